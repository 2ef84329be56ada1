// The Llama decoder of PLM (spec/plm_spec.md §2.7): token embedding, decoder layers (decoder_layer.h), final
// RMSNorm and the (tied or untied) LM head. Inference works on packed tokens of several sequences
// (TokenBatch) with a KV cache (kv_cache.h, dense or paged); training on packed sequences from position 0, with the
// layers' activations saved for the backward and a vocab-chunked loss (logits never whole).
// Holds this rank's share under tensor/pipeline parallelism (model/parallel.h): its TP slice of every
// projection and of the vocabulary, and its stage's layers. Training runs at any TP degree (the loss is
// vocab-parallel: model/layers/vocab_parallel_cross_entropy.h) and under a pipeline schedule (model/stage_pass.h,
// trainer/pipeline_schedule.h).
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "core/arena.h"
#include "core/tensor.h"
#include "model/config.h"
#include "model/layers/norms.h"
#include "model/parallel.h"
#include "model/text/decoder_layer.h"
#include "model/text/kv_cache.h"
#include "model/text/token_batch.h"
#include "model/trace.h"
#include "model/weights/hf_names.h"
#include "model/weights/weight_loader.h"

namespace plm::model {

// The decoder's parameters on this rank, as views (the model's weights or, rebound, their gradients).
struct DecoderWeights {
  Tensor embed_tokens;               // (V / tp, H), first stage only
  Tensor lm_head;                    // (V / tp, H), last stage only; == embed_tokens when tied on one stage
  bool lm_head_tied = false;         // lm_head is embed_tokens (one tensor, one gradient)
  // A tied head on a last stage that is not the first: lm_head is this stage's copy of the first stage's
  // embed_tokens and goes by its name; a pipeline trainer sums the two copies' gradients (trainer/tied_embedding.h).
  bool lm_head_copies_embedding = false;
  // CPU bf16 inference: lm_head (and embed_tokens with it when tied) is stored in weight panels
  // (LlamaDecoder::pack_head_panels).
  bool lm_head_panels = false;
  RmsNorm norm;                      // (H), last stage only
  std::vector<DecoderLayer> layers;  // this stage's layers
  int first_layer = 0;               // global index of layers[0]

  // f(hf_name, tensor&) for every parameter this rank holds, each tensor once.
  template <typename F>
  void for_each_parameter(F&& f) {
    if (embed_tokens.defined()) f(std::string(kEmbedTokensName), embed_tokens);
    for (size_t i = 0; i < layers.size(); ++i) {
      const int index = first_layer + static_cast<int>(i);
      layers[i].for_each_parameter(
          [&](const std::string& suffix, Tensor& t) { f(text_layer_name(index, suffix), t); });
    }
    if (norm.weight.defined()) f(text_name("norm.weight"), norm.weight);
    if (lm_head_tied) {
      lm_head = embed_tokens;
    } else if (lm_head.defined()) {
      f(std::string(lm_head_copies_embedding ? kEmbedTokensName : kLmHeadName), lm_head);
    }
  }
};

// What the training head saves: final norm input and statistics, and the loss' log-sum-exp.
// Only the N labelled rows reach the vocab-sized head: an unlabelled row has no loss and no gradient, and the
// head is most of an SFT step (a prompt, media placeholders and a short answer label few of the T rows).
struct HeadActivations {
  Tensor x;         // (T, H) the last layer's output
  Tensor rstd;      // (T) f32
  Tensor normed;    // (T, H)
  Tensor rows;      // (N) i32 the labelled rows of the T
  Tensor selected;  // (N, H) normed's labelled rows
  Tensor lse;       // (N) f32
  Tensor loss;      // (N) f32 per-token loss of the labelled rows
};

// The training activations of a stack of layers: per layer the tensors `recompute` keeps, with the others as
// views of one workspace shared by all layers (model/recompute.h).
struct DecoderActivations {
  Recompute recompute = Recompute::kNone;
  std::vector<DecoderLayerActivations> layers;
};

class LlamaDecoder {
 public:
  // lm_head_name: the tensor holding the output projection (hf_names.h lm_head_tensor_name).
  static absl::StatusOr<LlamaDecoder> load(const TextConfig& config, const WeightLoader& loader,
                                           const std::string& lm_head_name, const ModelParallel& parallel);

  const TextConfig& config() const { return config_; }
  DecoderWeights& weights() { return weights_; }
  // CPU bf16 inference: rewrites the LM head in place into weight panels (core/kernels/cpu/gemm_bf16_packed.h),
  // where it fits, like the projections; a tied embedding then gathers its rows from the panels. Inference only.
  void pack_head_panels();
  const DecoderWeights& weights() const { return weights_; }
  DecoderLayerDims layer_dims() const;
  // The layers [first_layer(), last_layer()) this rank holds.
  int first_layer() const { return weights_.first_layer; }
  int last_layer() const { return weights_.first_layer + static_cast<int>(weights_.layers.size()); }
  // What a KV cache of this rank holds per token: its layers and KV heads.
  KvLayout kv_layout() const;
  // RoPE positions (T) i32 on `device`: start + i for each chunk's tokens.
  static OwnedTensor positions(const TokenBatch& batch, Device device);

  // First stage. ids: (T) i32 on the model's device -> out: (T, H) (vocab-parallel lookup + all-reduce).
  void embed(Tensor out, Tensor ids, Stream s = {}) const;
  // Inference: runs this rank's layers over hidden (T, H) in place, writing the batch's keys and values into
  // the cache where `step` (cache.append(batch)) says and attending to each chunk's sequence.
  // positions: (T) i32 on the device.
  void forward_layers(Tensor hidden, Tensor positions, KvCache& cache, const KvStep& step, Tracer* tracer,
                      Stream s = {}) const;
  // Last stage. hidden rows (R, H) -> final RMSNorm -> normed (R, H) and full logits (R, V), gathered over
  // TP (logits may be undefined).
  void head(Tensor logits, Tensor normed, Tensor hidden, Stream s = {}) const;

  // ---- Training (packed sequences from position 0; activations from `arena`) ----
  // The activations of this rank's layers for T tokens under `recompute`.
  DecoderActivations allocate_activations(Arena& arena, int64_t tokens, DType dtype, Recompute recompute) const;
  size_t activation_bytes(int64_t tokens, DType dtype, Recompute recompute) const;
  // The most scratch one layer's adapters take for T tokens (0 without adapters).
  size_t adapter_scratch_bytes(int64_t tokens) const;
  // lora: the adapters' scratch and dropout keys (model/layers/lora.h).
  void forward_layers_train(Tensor hidden, Tensor positions, const PackedCausalAttention& attention,
                            DecoderActivations& acts, const LoraPass& lora = {}, Stream s = {}) const;
  // dhidden: grad w.r.t. the last layer's output on entry, w.r.t. the first layer's input on return. Rebuilds
  // each layer's dropped activations (in the shared workspace) right before its backward. lora_row_keys: the
  // forward's dropout keys. layer_done(global layer index), when set, follows each layer's backward: its
  // parameter gradients are final.
  void backward_layers(const DecoderWeights& grad, const DecoderActivations& acts, Tensor dhidden, Tensor positions,
                       const PackedCausalAttention& attention, Arena& scratch, Tensor lora_row_keys = {},
                       Stream s = {}, const std::function<void(int)>& layer_done = {}) const;
  // rows: (N) i32 the labelled rows of hidden (N may be 0; the same on every TP rank); targets: (N) i32 their
  // next-token ids. Fills a (allocated from arena); the loss is the whole vocabulary's on every TP rank.
  HeadActivations head_loss_forward(Arena& arena, Tensor hidden, Tensor rows, Tensor targets, Stream s = {}) const;
  // dloss: (N) f32 d(step loss)/d(per-token loss); targets: (N) as in forward. dhidden (T, H) =, zero on the
  // unlabelled rows.
  void head_loss_backward(const DecoderWeights& grad, const HeadActivations& a, Tensor dhidden, Tensor dloss,
                          Tensor targets, Arena& scratch, Stream s = {}) const;
  // dtable += the rows of dout at ids.
  void embed_backward(const DecoderWeights& grad, Tensor ids, Tensor dout, Stream s = {}) const;

 private:
  TextConfig config_;
  distributed::Communicator* tp_ = nullptr;  // this rank's TP group (a size-1 group without TP)
  // The ranks of the TP group holding this rank's KV heads (decoder_layer.h): a split of tp_ when tp > KV heads,
  // else a size-1 group.
  std::unique_ptr<distributed::Communicator> kv_replicas_owned_;
  distributed::Communicator* kv_replicas_ = nullptr;
  int local_heads_ = 0, local_kv_heads_ = 0, local_ffn_ = 0;
  int64_t vocab_start_ = 0;   // first vocabulary id of this rank's shard
  DecoderWeights weights_;
  OwnedTensor inv_freq_;      // (head_dim / 2) f32
  DType head_compute_ = DType::kF32;  // the LM head GEMM's MatmulOptions::compute (the loader's)
};

}  // namespace plm::model
