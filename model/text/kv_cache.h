// KvCache: per-layer key and value tensors for a fixed number of sequence slots, each holding up to
// max_len tokens: (num_slots, max_len, num_kv_heads, head_dim), keys stored after RoPE (spec §2.7 step 4).
// Preallocated once, so a decode step never copies the cache. The caller tracks each slot's length.
#pragma once

#include <vector>

#include "core/tensor.h"
#include "model/config.h"

namespace plm::model {

class KvCache {
 public:
  KvCache(const TextConfig& config, int num_slots, int64_t max_len, DType dtype, Device device);
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  int num_slots() const { return num_slots_; }
  int64_t max_len() const { return max_len_; }
  Tensor keys(int layer) const { return keys_[layer]; }
  Tensor values(int layer) const { return values_[layer]; }
  size_t nbytes() const;

 private:
  int num_slots_;
  int64_t max_len_;
  std::vector<OwnedTensor> keys_, values_;
};

}  // namespace plm::model
