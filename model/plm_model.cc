#include "model/plm_model.h"

#include <algorithm>
#include <span>

#include "absl/strings/str_cat.h"
#include "core/kernels/ops.h"
#include "core/status_macros.h"
#include "distributed/communicator.h"
#include "distributed/status_agreement.h"
#include "model/weights/hf_names.h"
#include "model/weights/weight_store.h"

namespace plm::model {

absl::StatusOr<std::unique_ptr<PlmModel>> PlmModel::load(const std::string& dir, Device device,
                                                         const ModelParallel& parallel, const LoadOptions& options) {
  std::unique_ptr<PlmModel> model(new PlmModel());
  PLM_ASSIGN_OR_RETURN(model->config_, load_plm_config(dir));
  PLM_RETURN_IF_ERROR(validate_parallel_layout(model->config_, parallel.tp_size(), parallel.pp_size()));
  if (!parallel.stage_layer_counts.empty()) {
    int total = 0;
    for (int c : parallel.stage_layer_counts) total += c < 0 ? -1000000 : c;
    if (static_cast<int>(parallel.stage_layer_counts.size()) != parallel.pp_size() ||
        total != model->config_.text.num_layers) {
      return absl::InvalidArgumentError(absl::StrCat("the per-stage layer counts must be ", parallel.pp_size(),
                                                     " non-negative numbers adding up to ", model->config_.text.num_layers,
                                                     " decoder layers"));
    }
  }
  model->parallel_ = parallel;
  model->for_training_ = options.for_training;
  PLM_ASSIGN_OR_RETURN(WeightStore store, WeightStore::open(dir));
  PLM_RETURN_IF_ERROR(validate_checkpoint(store, model->config_));
  PLM_ASSIGN_OR_RETURN(const std::string lm_head, lm_head_tensor_name(store, model->config_));
  if (options.cpu_compute != DType::kF32 && options.cpu_compute != DType::kBF16) {
    return absl::InvalidArgumentError(absl::StrCat("compute dtype ", std::string(dtype_name(options.cpu_compute)),
                                                   ": the CPU computes in f32 or bf16"));
  }
  model->device_ = device;
  model->dtype_ = device.is_cuda() ? DType::kBF16 : DType::kF32;
  model->compute_ = device.is_cuda() ? DType::kBF16 : options.cpu_compute;
  const WeightLoader loader(store, model->storage_, model->slices_, device, model->dtype_, !options.for_training,
                            device.is_cpu() ? options.cpu_compute : DType::kF32);
  if (parallel.part == ModelPart::kVision && parallel.pp_size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat("a vision-only model has no pipeline stages (pp is ", parallel.pp_size(), ")"));
  }
  if (parallel.first_stage() && parallel.part != ModelPart::kLanguage) {
    const bool split_vision = !parallel.replicate_vision && vision_splits(model->config_.vision, parallel.tp_size());
    PLM_ASSIGN_OR_RETURN(VisionTower vision,
                         VisionTower::load(model->config_.vision, loader, split_vision ? parallel.tp : nullptr));
    PLM_ASSIGN_OR_RETURN(Projector projector, Projector::load(model->config_, loader));
    model->vision_ = std::make_unique<VisionTower>(std::move(vision));
    model->projector_ = std::make_unique<Projector>(std::move(projector));
  }
  if (parallel.part != ModelPart::kVision) {
    PLM_ASSIGN_OR_RETURN(LlamaDecoder decoder, LlamaDecoder::load(model->config_.text, loader, lm_head, parallel));
    model->decoder_ = std::make_unique<LlamaDecoder>(std::move(decoder));
  }
  // The packed GEMM then reads each weight as one stream in the layout of its tiles instead of packing it per
  // call (a no-op for f32 compute, CUDA and CPUs without AVX512-BF16).
  if (!options.for_training) {
    model->for_each_linear([](Linear& layer) { pack_weight_panels(layer); });
    if (model->decoder_) model->decoder_->pack_head_panels();
  }
  return model;
}

void PlmModel::for_each_linear(const std::function<void(Linear&)>& f) {
  if (vision_) {
    VisionWeights& v = vision_->weights();
    f(v.patch_embed);
    for (VisionBlock& b : v.blocks) {
      for (Linear* layer : {&b.qkv, &b.proj, &b.fc1, &b.fc2}) f(*layer);
    }
  }
  if (projector_) {
    f(projector_->weights().linear_1);
    f(projector_->weights().linear_2);
  }
  if (decoder_) {
    for (DecoderLayer& l : decoder_->weights().layers) {
      for (Linear* layer : {&l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.gate_proj, &l.up_proj, &l.down_proj}) {
        f(*layer);
      }
    }
  }
}

std::unique_ptr<DenseKvCache> PlmModel::make_cache(int num_slots, int64_t max_len) const {
  return std::make_unique<DenseKvCache>(kv_layout(), num_slots, max_len, kv_dtype(), device_);
}

std::unique_ptr<PagedKvCache> PlmModel::make_paged_cache(const PagedKvCacheConfig& config) const {
  return std::make_unique<PagedKvCache>(kv_layout(), config, kv_dtype(), device_);
}

OwnedTensor PlmModel::model_input(Tensor pixels, Stream s) const {
  OwnedTensor input = to_device(pixels, device_);
  if (input.dtype() == dtype_) return input;
  OwnedTensor converted(input.shape(), dtype_, device_);
  cast(converted, input, s);
  return converted;
}

OwnedTensor PlmModel::encode_media(Tensor pixels, Tracer* tracer, Stream s) const {
  if (!parallel_.first_stage()) return OwnedTensor();
  PLM_CHECK(vision_ != nullptr) << "encode_media on a language-only model (its media rows come from encoder ranks)";
  const int64_t n = pixels.size(0);
  const OwnedTensor input = model_input(pixels, s);
  const VisionConfig& v = config_.vision;
  OwnedTensor tower_out({n, v.seq_len(), v.embed_dim}, dtype_, device_);
  vision_->forward(tower_out, input, tracer, s);
  const int64_t per_tile = config_.tokens_per_tile(), hidden = config_.text.hidden_size;
  OwnedTensor projected({n, per_tile, hidden}, dtype_, device_);
  projector_->forward(projected, tower_out, tracer, s);
  projected.reshape({n * per_tile, hidden});
  return projected;
}

absl::Status PlmModel::attach_lora(const LoraSpec& spec) {
  if (lora_) return absl::FailedPreconditionError("the model has LoRA adapters already");
  if (!for_training_) {
    return absl::FailedPreconditionError(
        "LoRA adapters attach to a model loaded for training (LoadOptions::for_training); this one was loaded for "
        "inference (bf16 weights, packed for the CPU GEMM)");
  }
  if (parallel_.tp_size() != 1) {
    return absl::UnimplementedError(absl::StrCat("LoRA with tp = ", parallel_.tp_size(), " (it supports tp = 1)"));
  }
  PLM_ASSIGN_OR_RETURN(lora_storage_, attach_lora_adapters(decoder_->weights(), spec, dtype_));
  lora_ = spec;
  for_each_parameter([&](const std::string& name, Tensor&) { slices_.try_emplace(name); });  // the adapters: whole
  return absl::OkStatus();
}

const TensorSlice& PlmModel::tensor_slice(const std::string& name) const {
  const auto it = slices_.find(name);
  PLM_CHECK(it != slices_.end()) << name << " is not a parameter of this rank";
  return it->second;
}

PlmWeights PlmModel::weights() const {
  PlmWeights w;
  if (vision_) w.vision = vision_->weights();
  if (projector_) w.projector = projector_->weights();
  if (decoder_) w.text = decoder_->weights();
  return w;
}

absl::Status PlmModel::check_batch(const std::vector<int32_t>& ids, const TokenBatch& batch,
                                   const KvCache& cache) const {
  if (batch.chunks.empty()) return absl::InvalidArgumentError("a batch without chunks");
  if (static_cast<int64_t>(ids.size()) != batch.num_tokens()) {
    return absl::InvalidArgumentError(absl::StrCat(ids.size(), " token ids for a batch of ", batch.num_tokens(), " tokens"));
  }
  for (int32_t id : ids) {
    if (id < 0 || id >= config_.text.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("token id ", id, " outside the vocabulary"));
    }
  }
  return cache.check(batch);
}

absl::StatusOr<Tensor> PlmModel::run(const std::vector<int32_t>& ids, const TokenBatch& batch,
                                     const std::function<absl::Status(Tensor x)>& scatter,
                                     const std::vector<int64_t>& rows, KvCache& cache, OwnedTensor& buffer,
                                     Tracer* tracer, Stream s) const {
  PLM_CHECK(decoder_ != nullptr) << "a forward on a vision-only model";
  const int64_t t = static_cast<int64_t>(ids.size()), hidden = config_.text.hidden_size;
  const int64_t vocab = config_.text.vocab_size;
  distributed::Communicator* pp = parallel_.pp_size() > 1 ? parallel_.pp : nullptr;
  constexpr int kActivationTag = 17;

  OwnedTensor x({t, hidden}, dtype_, device_);
  absl::Status inputs = check_batch(ids, batch, cache);
  if (inputs.ok() && parallel_.first_stage()) {
    decoder_->embed(x, to_device(host_i32(ids), device_), s);
    inputs = scatter(x);
    if (inputs.ok()) trace(tracer, x, "text.inputs_embeds");
  }
  // Stages check different things (only the first sees media): every stage learns of any stage's error
  // before the next one waits for activations that would never come (one i32 all-reduce over the pipeline).
  if (pp) inputs = distributed::agree_on_status(*pp, inputs, "pipeline stage", device_, s);
  PLM_RETURN_IF_ERROR(inputs);

  const OwnedTensor positions_device = LlamaDecoder::positions(batch, device_);
  const KvStep step = cache.append(batch);
  if (!parallel_.first_stage()) pp->recv(x, parallel_.pp_rank() - 1, kActivationTag, s);
  decoder_->forward_layers(x, positions_device, cache, step, tracer, s);
  if (!parallel_.last_stage()) pp->send(x, parallel_.pp_rank() + 1, kActivationTag, s);

  const int64_t r = static_cast<int64_t>(rows.size());
  if (r == 0) return Tensor();  // every stage knows: rows come from the batch
  if (!buffer.view().defined() || buffer.size(0) < r || buffer.device() != device_) {
    buffer = OwnedTensor({r, vocab}, DType::kF32, device_);
  }
  const Tensor logits_f32 = buffer.view().slice(0, 0, r);
  if (parallel_.last_stage()) {
    // The wanted rows, unless they are all of them in order.
    bool every_row = r == t;
    for (int64_t i = 0; every_row && i < r; ++i) every_row = rows[i] == i;
    OwnedTensor gathered;
    Tensor selected = x;
    if (!every_row) {
      gathered = OwnedTensor({r, hidden}, dtype_, device_);
      for (int64_t i = 0; i < r; ++i) {
        copy_tensor(gathered.view().slice(0, i, i + 1), x.view().slice(0, rows[i], rows[i] + 1), s);
      }
      selected = gathered;
    }
    OwnedTensor normed({r, hidden}, dtype_, device_);
    if (dtype_ == DType::kF32) {
      decoder_->head(logits_f32, normed, selected, s);
    } else {
      OwnedTensor logits({r, vocab}, dtype_, device_);
      decoder_->head(logits, normed, selected, s);
      cast(logits_f32, logits, s);
    }
    trace(tracer, normed, "text.final_hidden");
  }
  // Every stage returns the logits, so every rank samples the same next tokens.
  if (pp) pp->broadcast(logits_f32, parallel_.pp_size() - 1, s);
  return logits_f32;
}

size_t PlmModel::release_moved_weights(const std::vector<const std::byte*>& moved) {
  std::vector<const std::byte*> in_use;
  for_each_parameter([&](const std::string&, Tensor& t) {
    if (t.defined()) in_use.push_back(static_cast<const std::byte*>(t.data()));
  });
  const auto inside = [](const OwnedTensor& owner, const std::byte* p) {
    const auto* begin = static_cast<const std::byte*>(owner.view().data());
    return begin != nullptr && p >= begin && p < begin + owner.view().nbytes();
  };
  size_t freed = 0;
  for (OwnedTensor& owner : storage_) {
    const bool held_moved = std::any_of(moved.begin(), moved.end(), [&](const std::byte* p) { return inside(owner, p); });
    const bool still_used = std::any_of(in_use.begin(), in_use.end(), [&](const std::byte* p) { return inside(owner, p); });
    if (!held_moved || still_used) continue;
    freed += owner.view().nbytes();
    owner = OwnedTensor();
  }
  return freed;
}

absl::StatusOr<OwnedTensor> PlmModel::forward(const std::vector<int32_t>& ids, const TokenBatch& batch,
                                              const MediaEmbeddings& media, KvCache& cache, bool all_positions,
                                              Tracer* tracer, Stream s) const {
  std::vector<int64_t> rows;
  int64_t end = 0;
  for (const SequenceChunk& c : batch.chunks) {
    for (int64_t p = all_positions ? end : end + c.length - 1; p < end + c.length; ++p) rows.push_back(p);
    end += c.length;
  }
  const auto scatter = [&](Tensor x) { return scatter_media(x, ids, media, media_tokens(), s); };
  OwnedTensor logits;  // allocated by run() to exactly the rows wanted
  PLM_RETURN_IF_ERROR(run(ids, batch, scatter, rows, cache, logits, tracer, s).status());
  return logits;
}

absl::StatusOr<StepOutput> PlmModel::step(const StepBatch& batch, KvCache& cache, Tracer* tracer, Stream s) const {
  StepOutput out;
  PLM_RETURN_IF_ERROR(step(batch, cache, out, tracer, s));
  return out;
}

absl::Status PlmModel::step(const StepBatch& batch, KvCache& cache, StepOutput& out, Tracer* tracer, Stream s) const {
  std::vector<int32_t> ids;
  TokenBatch tokens;
  out.first_rows.assign(1, 0);
  std::vector<int64_t> rows;
  for (const StepChunk& c : batch.chunks) {
    const int64_t length = static_cast<int64_t>(c.ids.size()), at = static_cast<int64_t>(ids.size());
    int64_t first = length;
    switch (c.logits) {
      case ChunkLogits::kNone: break;
      case ChunkLogits::kLast: first = length - 1; break;
      case ChunkLogits::kAll: first = 0; break;
    }
    for (int64_t p = first; p < length; ++p) rows.push_back(at + p);
    out.first_rows.push_back(static_cast<int64_t>(rows.size()));
    ids.insert(ids.end(), c.ids.begin(), c.ids.end());
    tokens.chunks.push_back({c.sequence, c.start, length});
  }
  const auto scatter = [&](Tensor x) {
    int64_t at = 0;
    for (size_t i = 0; i < batch.chunks.size(); ++i) {
      const StepChunk& c = batch.chunks[i];
      const int64_t length = static_cast<int64_t>(c.ids.size());
      const int64_t prompt = std::clamp<int64_t>(c.media_end - c.start, 0, length);
      const absl::Status status = scatter_media(x.slice(0, at, at + prompt), std::span(c.ids).first(prompt), c.media,
                                                media_tokens(), s);
      if (!status.ok()) {
        return absl::Status(status.code(),
                            absl::StrCat("chunk ", i, " (sequence ", c.sequence, "): ", status.message()));
      }
      at += length;
    }
    return absl::OkStatus();
  };
  PLM_ASSIGN_OR_RETURN(out.logits, run(ids, tokens, scatter, rows, cache, out.buffer, tracer, s));
  return absl::OkStatus();
}

}  // namespace plm::model
