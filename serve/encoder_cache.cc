#include "serve/encoder_cache.h"

#include "core/check.h"

namespace plm::serve {

EncoderCache::EncoderCache(int64_t capacity_bytes) : capacity_bytes_(capacity_bytes) {
  PLM_CHECK_GE(capacity_bytes, 0);
}

EncoderCache::Entry EncoderCache::find(const MediaKey& key) {
  const auto it = index_.find(key);
  if (it == index_.end()) {
    ++misses_;
    return nullptr;
  }
  ++hits_;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->value;
}

void EncoderCache::insert(const MediaKey& key, Entry value) {
  PLM_CHECK(value != nullptr);
  if (const auto it = index_.find(key); it != index_.end()) erase(it->second);
  const auto bytes = static_cast<int64_t>(value->view().nbytes());
  if (bytes > capacity_bytes_) return;
  while (bytes_ + bytes > capacity_bytes_) {
    erase(std::prev(lru_.end()));
    ++evictions_;
  }
  lru_.push_front({key, std::move(value), bytes});
  index_[key] = lru_.begin();
  bytes_ += bytes;
}

void EncoderCache::erase(std::list<Node>::iterator it) {
  bytes_ -= it->bytes;
  index_.erase(it->key);
  lru_.erase(it);
}

EncoderCacheCounters EncoderCache::counters() const {
  return {.hits = hits_,
          .misses = misses_,
          .evictions = evictions_,
          .entries = static_cast<int64_t>(lru_.size()),
          .bytes = bytes_,
          .capacity_bytes = capacity_bytes_};
}

}  // namespace plm::serve
