// AdamW with torch semantics (decoupled weight decay, bias correction) over the trainable parameters laid
// out flat (model/flat_parameters.h), keeping the fp32 master weights and both moments of this rank's
// ZeRO shard only: a contiguous range of the flat vector (ZeRO-0 and a single rank: the whole vector).
// Weight decay applies to parameters with >= 2 dims only. Not thread-safe.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "model/flat_parameters.h"

namespace plm::trainer {

// [begin, end) of a flat vector.
struct Range {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
};

// Rank `rank`'s part of an even split of `numel` elements over `size` ranks (the first numel % size
// ranks get one more): ZeRO's contiguous shards, which need no tensor to divide by the rank count.
Range shard_range(int64_t numel, int rank, int size);
std::vector<int64_t> shard_counts(int64_t numel, int size);

struct AdamWConfig {
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;
};

class ShardedAdamW {
 public:
  // entries: the flat layout of the trainable parameters; params: the flat working parameters (the
  // master shard starts as their values, widened to f32).
  ShardedAdamW(std::vector<model::FlatEntry> entries, Range shard, Tensor params, const AdamWConfig& config);
  ShardedAdamW(const ShardedAdamW&) = delete;
  ShardedAdamW& operator=(const ShardedAdamW&) = delete;

  // One update. grad_shard: (shard size) this rank's part of the step's gradient; params_shard: the
  // working parameters' same range (written). grad_scale multiplies the gradient first (clipping).
  void step(Tensor grad_shard, Tensor params_shard, float lr, float grad_scale, Stream s = {});

  const Range& shard() const { return shard_; }
  int64_t steps_taken() const { return steps_; }
  // State for checkpoints: (shard size) f32 each; restore with set_state.
  Tensor master() const { return master_; }
  Tensor exp_avg() const { return exp_avg_; }
  Tensor exp_avg_sq() const { return exp_avg_sq_; }
  void set_steps_taken(int64_t steps) { steps_ = steps; }

 private:
  std::vector<model::FlatEntry> entries_;
  Range shard_;
  AdamWConfig config_;
  int64_t steps_ = 0;
  OwnedTensor master_, exp_avg_, exp_avg_sq_;
};

}  // namespace plm::trainer
