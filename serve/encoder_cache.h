// EncoderCache: post-projector embeddings of single image tiles and video frames, each (tokens_per_tile, H) in the
// model's dtype on its device, keyed by the tile's MediaKey and evicted least-recently-used to stay within a
// byte budget. A repeated image, or a video window overlapping one seen before, skips the vision tower for every
// tile / frame found here. Entries are shared: a step that resolved one keeps it alive after an eviction.
// Not thread-safe: the engine thread owns it; counters() is a copy for metrics.
#pragma once

#include <cstdint>
#include <list>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "core/tensor.h"
#include "serve/media_key.h"

namespace plm::serve {

struct EncoderCacheCounters {
  int64_t hits = 0;       // lookups that found the tile
  int64_t misses = 0;     // lookups that did not (the tile was encoded)
  int64_t evictions = 0;
  int64_t entries = 0;
  int64_t bytes = 0;
  int64_t capacity_bytes = 0;
};

class EncoderCache {
 public:
  using Entry = std::shared_ptr<const OwnedTensor>;

  explicit EncoderCache(int64_t capacity_bytes);
  EncoderCache(const EncoderCache&) = delete;
  EncoderCache& operator=(const EncoderCache&) = delete;

  // The entry (now the most recent) or null; counts a hit or a miss.
  Entry find(const MediaKey& key);
  // Whether find() would hit, without counting or reordering (for the scheduler's vision budget).
  bool contains(const MediaKey& key) const { return index_.contains(key); }
  // Stores `value` as the most recent entry, evicting the least recent ones until it fits. A value larger
  // than the whole budget (or any value with a zero budget) is not stored. Replaces an existing entry.
  void insert(const MediaKey& key, Entry value);
  EncoderCacheCounters counters() const;

 private:
  struct Node {
    MediaKey key;
    Entry value;
    int64_t bytes;
  };
  void erase(std::list<Node>::iterator it);

  int64_t capacity_bytes_;
  int64_t bytes_ = 0;
  int64_t hits_ = 0, misses_ = 0, evictions_ = 0;
  std::list<Node> lru_;  // most recent first
  absl::flat_hash_map<MediaKey, std::list<Node>::iterator> index_;
};

}  // namespace plm::serve
