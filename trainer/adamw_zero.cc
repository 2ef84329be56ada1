#include "trainer/adamw_zero.h"

#include <algorithm>

#include "core/kernels/ops.h"

namespace plm::trainer {

std::vector<int64_t> shard_counts(int64_t numel, int size) {
  std::vector<int64_t> counts(static_cast<size_t>(size), numel / size);
  for (int r = 0; r < numel % size; ++r) ++counts[static_cast<size_t>(r)];
  return counts;
}

Range shard_range(int64_t numel, int rank, int size) {
  const std::vector<int64_t> counts = shard_counts(numel, size);
  Range r;
  for (int i = 0; i < rank; ++i) r.begin += counts[static_cast<size_t>(i)];
  r.end = r.begin + counts[static_cast<size_t>(rank)];
  return r;
}

ShardedAdamW::ShardedAdamW(std::vector<model::FlatEntry> entries, Range shard, Tensor params,
                           const AdamWConfig& config)
    : entries_(std::move(entries)),
      shard_(shard),
      config_(config),
      master_({shard.size()}, DType::kF32, params.device()),
      exp_avg_({shard.size()}, DType::kF32, params.device()),
      exp_avg_sq_({shard.size()}, DType::kF32, params.device()) {
  if (shard.size() == 0) return;
  cast(master_, params.slice(0, shard.begin, shard.end));
  fill(exp_avg_, 0.0f);
  fill(exp_avg_sq_, 0.0f);
}

void ShardedAdamW::step(Tensor grad_shard, Tensor params_shard, float lr, float grad_scale, Stream s) {
  ++steps_;
  PLM_CHECK_EQ(grad_shard.numel(), shard_.size());
  PLM_CHECK_EQ(params_shard.numel(), shard_.size());
  // Each parameter's part inside the shard, with its own weight decay.
  for (const model::FlatEntry& e : entries_) {
    const int64_t begin = std::max(e.offset, shard_.begin), end = std::min(e.offset + e.numel, shard_.end);
    if (begin >= end) continue;
    const int64_t a = begin - shard_.begin, b = end - shard_.begin;
    const AdamWOptions options{.lr = lr, .beta1 = config_.beta1, .beta2 = config_.beta2, .eps = config_.eps,
                               .weight_decay = e.shape.rank() >= 2 ? config_.weight_decay : 0.0f,
                               .step = steps_, .grad_scale = grad_scale};
    adamw_step(master_.view().slice(0, a, b), exp_avg_.view().slice(0, a, b), exp_avg_sq_.view().slice(0, a, b),
               grad_shard.slice(0, a, b), params_shard.slice(0, a, b), options, s);
  }
}

}  // namespace plm::trainer
