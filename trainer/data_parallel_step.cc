#include "trainer/data_parallel_step.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/kernels/ops.h"
#include "core/status_macros.h"
#include "distributed/status_agreement.h"
#include "model/weights/hf_names.h"
#include "trainer/gradient_reducer.h"

namespace plm::trainer {

namespace {

// Sums one count over the group (on the group's device).
int64_t sum_over(distributed::Communicator& group, int64_t value, Device device) {
  OwnedTensor host({1}, DType::kI64);
  host.data_as<int64_t>()[0] = value;
  OwnedTensor t = to_device(host, device);
  group.all_reduce(t, distributed::ReduceOp::kSum);
  return to_device(t, Device::cpu()).data_as<int64_t>()[0];
}

double sum_over(distributed::Communicator& group, double value, Device device) {
  OwnedTensor host({1}, DType::kF32);
  host.data_as<float>()[0] = static_cast<float>(value);
  OwnedTensor t = to_device(host, device);
  group.all_reduce(t, distributed::ReduceOp::kSum);
  return to_device(t, Device::cpu()).data_as<float>()[0];
}

double squared_norm(Tensor t, Stream s) {
  if (t.numel() == 0) return 0.0;
  OwnedTensor out({1}, DType::kF32, t.device());
  sum_squares(out, t, s);
  return to_device(out, Device::cpu()).data_as<float>()[0];
}

}  // namespace

std::optional<int64_t> DataParallelStep::first_offset(const std::string& prefix) const {
  std::optional<int64_t> first;
  for (const model::FlatEntry& e : params_->entries()) {
    if (e.name.starts_with(prefix) && (!first || e.offset < *first)) first = e.offset;
  }
  return first;
}

DataParallelStep::DataParallelStep(model::PlmModel& model, distributed::Communicator& dp,
                                   const DataParallelConfig& config,
                                   const std::function<bool(const std::string&)>& trainable,
                                   distributed::Communicator* tied_embedding)
    : model_(model), dp_(dp), tied_embedding_(tied_embedding), config_(config) {
  PLM_CHECK(config.zero_stage >= 0 && config.zero_stage <= 2) << "ZeRO stage " << config.zero_stage;
  const DType dtype = model.dtype();
  params_ = std::make_unique<model::FlatParameters>(model.weights(), dtype, model.device(), trainable);
  // Move the trainable parameters into the flat buffer, point the model at it and free what held them.
  std::vector<const std::byte*> moved;
  model.for_each_parameter([&](const std::string& name, Tensor& t) {
    const model::FlatEntry* e = params_->find(name);
    if (e == nullptr) return;
    const Tensor slot = params_->flat().slice(0, e->offset, e->offset + e->numel).reshape(e->shape);
    copy_tensor(slot, t);
    moved.push_back(static_cast<const std::byte*>(t.data()));
    t = slot;
  });
  model.release_moved_weights(moved);
  grads_ = std::make_unique<model::FlatParameters>(model.weights(), dtype, model.device(), trainable);
  const Range shard = config.zero_stage == 0 ? Range{0, params_->numel()}
                                             : shard_range(params_->numel(), dp.rank(), dp.size());
  optimizer_ = std::make_unique<ShardedAdamW>(params_->entries(), shard, params_->flat(), config.adamw);
  const distributed::Communicator& tp = model.parallel().tp_group();
  for (const model::FlatEntry& e : params_->entries()) {
    if (tp.rank() % model.tensor_slice(e.name).holders(tp.size()) != 0) continue;
    // The last stage's copy of a tied embedding: the first stage counts it.
    if (e.name == model::kEmbedTokensName && !model.parallel().first_stage()) continue;
    if (!norm_ranges_.empty() && norm_ranges_.back().end == e.offset) {
      norm_ranges_.back().end += e.numel;
    } else {
      norm_ranges_.push_back({e.offset, e.offset + e.numel});
    }
  }
}

double DataParallelStep::squared_grad_norm(const Range& shard, Stream s) const {
  // ZeRO-2 holds the DP sum of its shard only: each rank squares its shard, summed over DP.
  const Range reduced = config_.zero_stage == 2 ? shard : Range{0, grads_->numel()};
  double squared = 0.0;
  for (const Range& r : norm_ranges_) {
    const int64_t begin = std::max(r.begin, reduced.begin), end = std::min(r.end, reduced.end);
    if (begin < end) squared += squared_norm(grads_->flat().slice(0, begin, end), s);
  }
  const Device device = model_.device();
  if (config_.zero_stage == 2) squared = sum_over(dp_, squared, device);
  return sum_over(model_.parallel().pp_group(), sum_over(model_.parallel().tp_group(), squared, device), device);
}

absl::StatusOr<StepStats> DataParallelStep::step(const std::vector<model::TrainingBatch>& micro_batches, float lr,
                                                 Stream s) {
  StepStats stats;
  int64_t local_labelled = 0, local_tokens = 0;
  for (const model::TrainingBatch& b : micro_batches) {
    local_tokens += static_cast<int64_t>(b.ids.size());
    for (const int32_t t : b.targets) local_labelled += t != model::kIgnoreTarget;
  }
  const Device device = model_.device();
  stats.labelled_tokens = sum_over(dp_, local_labelled, device);
  stats.tokens = sum_over(dp_, local_tokens, device);
  if (stats.labelled_tokens == 0) {
    return absl::InvalidArgumentError("the step's samples have no labelled token (nothing to train on)");
  }
  const float loss_scale = 1.0f / static_cast<float>(stats.labelled_tokens);

  const Tensor grads = grads_->flat();
  if (grads.numel() > 0) fill(grads, 0.0f, s);
  const Range shard = optimizer_->shard();
  std::vector<Range> shards;
  for (int r = 0; r < dp_.size(); ++r) shards.push_back(shard_range(grads.numel(), r, dp_.size()));
  const auto make_reducer = [&] {
    // Host buffers are reduced on a background thread while the last backward runs; device ones after it.
    return std::make_unique<GradientReducer>(dp_, grads, shards, config_.zero_stage, config_.bucket_elements,
                                             /*background=*/!device.is_cuda());
  };
  // A rank holding every stage reduces the gradients of the last backward as they become final; a pipeline stage
  // after its schedule (the tied embedding's copies are summed first).
  const bool pipelined = model_.parallel().pp_size() > 1;
  std::unique_ptr<GradientReducer> reducer;
  PipelineOptions options{.recompute = config_.recompute};
  if (!pipelined) {
    reducer = make_reducer();
    options.gradients_final = [&](const std::string& prefix) {
      if (const std::optional<int64_t> offset = first_offset(prefix)) reducer->mark_final_from(*offset);
    };
  }
  const absl::StatusOr<PipelineStats> ran = run_one_f_one_b(model_, grads_->views(), micro_batches, loss_scale,
                                                            model_.parallel().pp_group(), options, s);
  const absl::Status passes = ran.status();
  if (ran.ok()) {
    stats.pipeline = *ran;
    stats.vision_tiles = ran->vision_tiles;
    stats.vision_passes = ran->vision_passes;
    stats.peak_arena_bytes = ran->peak_arena_bytes;
  }
  const double local_loss = ran.ok() ? ran->loss_sum : 0.0;
  // A tied head's two copies: their gradients summed (both train, or neither: they share a name).
  const model::FlatEntry* tied = tied_embedding_ != nullptr && tied_embedding_->size() > 1
                                     ? grads_->find(model::kEmbedTokensName)
                                     : nullptr;
  if (tied != nullptr) {
    tied_embedding_->all_reduce(grads.slice(0, tied->offset, tied->offset + tied->numel), distributed::ReduceOp::kSum,
                                s);
  }
  // Every rank runs every bucket's collective whatever failed locally (no rank is left waiting), then all agree:
  // a micro-batch one rank rejects fails the step on every rank before the update.
  if (reducer == nullptr) reducer = make_reducer();
  reducer->finish(s);
  reducer.reset();
  PLM_RETURN_IF_ERROR(distributed::agree_on_status(dp_, passes, "data-parallel rank", device, s));
  // The loss is the last stage's (a sum over the pipeline of what each stage has).
  stats.loss = sum_over(dp_, sum_over(model_.parallel().pp_group(), local_loss, device), device) /
               static_cast<double>(stats.labelled_tokens);

  Tensor grad_shard = grads.slice(0, shard.begin, shard.end);
  stats.grad_norm = std::sqrt(squared_grad_norm(shard, s));
  if (config_.grad_clip > 0.0f) {
    stats.clip_coef = std::min(1.0, static_cast<double>(config_.grad_clip) / (stats.grad_norm + 1e-6));
  }

  const Tensor params = params_->flat();
  optimizer_->step(grad_shard, params.slice(0, shard.begin, shard.end), lr, static_cast<float>(stats.clip_coef), s);
  if (config_.zero_stage > 0 && dp_.size() > 1) {
    OwnedTensor mine({shard.size()}, params.dtype(), device);
    copy_tensor(mine, params.slice(0, shard.begin, shard.end), s);
    dp_.all_gather(params, mine, shard_counts(params.numel(), dp_.size()), s);
  }
  return stats;
}

}  // namespace plm::trainer
