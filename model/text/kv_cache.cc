#include "model/text/kv_cache.h"

namespace plm::model {

KvCache::KvCache(const TextConfig& config, int num_slots, int64_t max_len, DType dtype, Device device)
    : num_slots_(num_slots), max_len_(max_len) {
  const Shape shape{num_slots, max_len, config.num_kv_heads, config.head_dim};
  for (int l = 0; l < config.num_layers; ++l) {
    keys_.emplace_back(shape, dtype, device);
    values_.emplace_back(shape, dtype, device);
  }
}

size_t KvCache::nbytes() const {
  size_t total = 0;
  for (size_t l = 0; l < keys_.size(); ++l) total += keys_[l].view().nbytes() + values_[l].view().nbytes();
  return total;
}

}  // namespace plm::model
