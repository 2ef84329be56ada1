// PlmModel: PerceptionLMForConditionalGeneration loaded from a Hugging Face directory onto one device
// (f32 on CPU, bf16 on CUDA), optionally as this rank's share of a TP x PP layout (model/parallel.h).
// Stage-level entry points: encode_media() runs vision tower + projector (first stage), tile by tile;
// step() embeds the packed tokens of a mixed batch (model/step.h), scatters each chunk's media rows into its
// <|image|>/<|video|> placeholders (spec §2.1: images then videos, each in order), runs this stage's decoder
// layers with a KV cache (dense or paged, model/text/kv_cache.h), passes activations to the next stage, and
// returns the wanted logits on every rank; forward() is the same over one TokenBatch with the media of the
// whole batch. Every rank of the layout calls the same methods in the same order (they are collective).
// Not thread-safe across calls that communicate.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/check.h"
#include "core/tensor.h"
#include "model/config.h"
#include "model/lora.h"
#include "model/media_scatter.h"
#include "model/parallel.h"
#include "model/projector.h"
#include "model/step.h"
#include "model/text/kv_cache.h"
#include "model/text/llama_decoder.h"
#include "model/text/paged_kv_cache.h"
#include "model/text/token_batch.h"
#include "model/trace.h"
#include "model/vision/vision_tower.h"
#include "model/weights/tensor_slice.h"

namespace plm::model {

// The parameters of one rank as views: the model's weights, or (a copy rebound to other buffers) gradients.
struct PlmWeights {
  VisionWeights vision;        // first stage only (empty elsewhere)
  ProjectorWeights projector;  // first stage only
  DecoderWeights text;

  // f(hf_name, tensor&) for every parameter tensor this rank holds, each once, in a fixed order.
  template <typename F>
  void for_each_parameter(F&& f) {
    if (vision.pos_embed.defined()) vision.for_each_parameter(f);
    if (projector.linear_1.weight.defined()) projector.for_each_parameter(f);
    text.for_each_parameter(f);
  }
};

struct LoadOptions {
  // Every tensor in the working dtype (f32 on CPU), as the optimizer updates them; inference keeps
  // bf16-stored matrices bf16 on CPU.
  bool for_training = false;
  // CPU inference: kF32 is the oracle (f32 activations, bf16 weights widened exactly); kBF16 the bf16 compute
  // mode: GEMMs (LM head included) on bf16-rounded activations and bf16 weights with f32 sums, a bf16 KV cache,
  // norms / softmax / RoPE and the residual stream in f32. CPU training: kBF16 rounds both operands of every
  // projection's GEMMs (forward, dx and dW; the f32 master weights stay f32), as PyTorch autocast multiplies.
  // CUDA always computes in bf16 (kF32 is its default).
  DType cpu_compute = DType::kF32;
};

class PlmModel {
 public:
  // dir: an HF model directory (config.json + safetensors, single or sharded). Validates the
  // checkpoint against the config before loading anything.
  static absl::StatusOr<std::unique_ptr<PlmModel>> load(const std::string& dir, Device device,
                                                         const ModelParallel& parallel = {},
                                                         const LoadOptions& options = {});

  const PlmConfig& config() const { return config_; }
  Device device() const { return device_; }
  DType dtype() const { return dtype_; }
  // LoadOptions::cpu_compute on CPU; dtype() on CUDA.
  DType compute_dtype() const { return compute_; }
  // The KV caches' dtype: the activations' (dtype()), bf16 in the CPU bf16 compute mode.
  DType kv_dtype() const { return compute_ == DType::kBF16 ? DType::kBF16 : dtype_; }
  // KV caches for this rank's layers, in the model's dtype on its device.
  KvLayout kv_layout() const {
    PLM_CHECK(decoder_ != nullptr) << "a vision-only model has no KV cache";
    return decoder_->kv_layout();
  }
  std::unique_ptr<DenseKvCache> make_cache(int num_slots, int64_t max_len) const;
  std::unique_ptr<PagedKvCache> make_paged_cache(const PagedKvCacheConfig& config) const;
  const ModelParallel& parallel() const { return parallel_; }
  MediaTokens media_tokens() const { return {config_.image_token_id, config_.video_token_id}; }

  // The stages' pieces, for training passes and pipeline schedules. vision/projector: first stage only.
  const VisionTower& vision() const { return *vision_; }
  const Projector& projector() const { return *projector_; }
  const LlamaDecoder& decoder() const { return *decoder_; }
  bool has_vision() const { return vision_ != nullptr; }
  bool has_decoder() const { return decoder_ != nullptr; }  // false on a vision-only rank (ModelPart::kVision)

  // Views of every parameter of this rank (copies of the views: rebind them to make gradient structs).
  PlmWeights weights() const;
  // Which part of the HF tensor `name` this rank holds (the whole of it without tensor parallelism).
  const TensorSlice& tensor_slice(const std::string& name) const;
  // Whether this rank holds a part of parameter `name` (a row-parallel bias lives on TP rank 0 only).
  bool holds(const std::string& name) const { return slices_.contains(name); }
  // Adds LoRA / DoRA adapters to the decoder projections spec.targets names (model/lora.h), owned by the
  // model and initialised as peft does; for_each_parameter visits them afterwards. Once per model; tp = 1.
  absl::Status attach_lora(const LoraSpec& spec);
  // The attached adapters' spec; empty without adapters.
  const std::optional<LoraSpec>& lora() const { return lora_; }
  // f(hf_name, tensor&) over the model's own parameter views, e.g. to move them into one flat buffer.
  template <typename F>
  void for_each_parameter(F&& f) {
    if (vision_) vision_->weights().for_each_parameter(f);
    if (projector_) projector_->weights().for_each_parameter(f);
    if (decoder_) decoder_->weights().for_each_parameter(f);
  }
  // After parameter views were rebound to other memory (a trainer's flat buffer): frees every loaded weight
  // tensor that held one of `moved` (the old views' data) and that no current parameter view points into.
  // Returns the bytes freed.
  size_t release_moved_weights(const std::vector<const std::byte*>& moved);

  // pixels: (N, 3, img, img) normalised tiles or frames, any float dtype and device
  // -> (N * tokens_per_tile, H) in the model's dtype on its device: tile_rows(rows, i) are tile i's. Each tile
  // is encoded on its own (no row depends on another tile of the call), so an engine may encode tiles and
  // frames in any grouping and cache their rows one by one. Empty on stages other than the first (they never
  // see media).
  OwnedTensor encode_media(Tensor pixels, Tracer* tracer = nullptr, Stream s = {}) const;
  // Rows (tokens_per_tile, H) of tile or frame i in encode_media's output.
  Tensor tile_rows(Tensor rows, int64_t i) const {
    const int64_t n = config_.tokens_per_tile();
    return rows.slice(0, i * n, (i + 1) * n);
  }
  // pixels of any float dtype and device as the model's working dtype on its device.
  OwnedTensor model_input(Tensor pixels, Stream s = {}) const;

  // ids: the batch's packed token ids (host). Returns logits (f32, on the model's device):
  // (num_chunks, V) for the last token of each chunk, or (T, V) for every token when all_positions.
  // An error (bad ids, a batch beyond the cache, media that do not fill the placeholders) is returned on
  // every rank of the pipeline, naming the stage that found it, before any activation is sent.
  absl::StatusOr<OwnedTensor> forward(const std::vector<int32_t>& ids, const TokenBatch& batch,
                                      const MediaEmbeddings& media, KvCache& cache, bool all_positions,
                                      Tracer* tracer = nullptr, Stream s = {}) const;
  // One engine iteration: every chunk appended to its sequence in `cache` (check() first: on any error,
  // returned on every rank as forward() does, the cache is unchanged), and the logits each chunk asks for.
  // Chunk errors name the chunk and its sequence.
  absl::StatusOr<StepOutput> step(const StepBatch& batch, KvCache& cache, Tracer* tracer = nullptr,
                                  Stream s = {}) const;
  // The same into `out`, reusing its logits buffer (an engine passes one StepOutput to every step).
  absl::Status step(const StepBatch& batch, KvCache& cache, StepOutput& out, Tracer* tracer = nullptr,
                    Stream s = {}) const;

 private:
  PlmModel() = default;
  // The forward of forward() and step() over packed ids: checks, embeds, calls scatter(x) on the first stage
  // to put the media rows in, runs the layers, and returns the logits (f32) of the packed rows `rows`: the
  // first rows of `buffer`, which is reallocated when it has fewer (undefined when `rows` is empty).
  absl::StatusOr<Tensor> run(const std::vector<int32_t>& ids, const TokenBatch& batch,
                             const std::function<absl::Status(Tensor x)>& scatter, const std::vector<int64_t>& rows,
                             KvCache& cache, OwnedTensor& buffer, Tracer* tracer, Stream s) const;
  absl::Status check_batch(const std::vector<int32_t>& ids, const TokenBatch& batch, const KvCache& cache) const;
  // Every projection of this rank's towers: CPU bf16 inference packs them into weight panels at load
  // (model/layers/linear.h).
  void for_each_linear(const std::function<void(Linear&)>& f);

  PlmConfig config_;
  ModelParallel parallel_;
  Device device_;
  DType dtype_ = DType::kF32;
  DType compute_ = DType::kF32;
  bool for_training_ = false;  // LoadOptions::for_training
  WeightStorage storage_;  // owns every weight; the layers hold views
  TensorSlices slices_;    // the part of its HF tensor each parameter is
  std::optional<LoraSpec> lora_;
  std::vector<OwnedTensor> lora_storage_;  // the adapters' tensors; the projections hold views
  std::unique_ptr<VisionTower> vision_;
  std::unique_ptr<Projector> projector_;
  std::unique_ptr<LlamaDecoder> decoder_;
};

}  // namespace plm::model
