// PrefixCache: full blocks of a model::PagedKvCache kept after their sequences let go of them, found again by
// content (BlockHash, block_hash.h), so a sequence whose first blocks have the same content (a shared system
// prompt, a repeated image prompt, a preempted sequence's own tokens) starts with them instead of recomputing.
// The cache holds one reference on every block it knows. A block that only the cache holds is evictable; when
// the pool needs room, evictable blocks go least recently released first (and of one sequence, its last block
// first, since a chain is only found through its head). vLLM's block pool, as plain bookkeeping over the cache's
// ref counts. Not thread-safe.
#pragma once

#include <cstdint>
#include <list>
#include <span>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "model/text/paged_kv_cache.h"
#include "serve/block_hash.h"

namespace plm::serve {

struct PrefixCacheCounters {
  int64_t queried_tokens = 0;    // tokens of the sequences admitted
  int64_t hit_tokens = 0;        // of them, found in the cache (whole blocks, never a sequence's last token)
  int64_t evictions = 0;         // blocks evicted
  int64_t cached_blocks = 0;     // blocks the cache knows, in use by sequences or not
  int64_t evictable_blocks = 0;  // of them, held by the cache alone
};

class PrefixCache {
 public:
  explicit PrefixCache(model::PagedKvCache& cache);
  PrefixCache(const PrefixCache&) = delete;
  PrefixCache& operator=(const PrefixCache&) = delete;

  // The blocks holding hashes[0, k) for the longest such k (the lookup stops at the first miss).
  std::vector<int32_t> match(std::span<const BlockHash> hashes) const;
  // A sequence took `blocks` (from match()): they are in use, no longer evictable.
  void acquire(std::span<const int32_t> blocks);
  // A sequence let go of `blocks` (its table, after PagedKvCache::free_sequence): those that only the cache holds
  // now become the most recently released evictable blocks, the table's last block first.
  void release(std::span<const int32_t> blocks);
  // `block`, a full block in use, holds `hash`: the cache keeps it, unless it knows the hash already (another
  // block with the same content stays with its sequence and is freed with it).
  void insert(const BlockHash& hash, int32_t block);
  // Evicts least recently released blocks until the pool has `blocks` free ones. False, evicting nothing, when
  // even every evictable block would not make enough.
  bool make_free(int64_t blocks);
  int64_t num_evictable() const { return static_cast<int64_t>(evictable_.size()); }
  // An admission looked up `queried` tokens and found `hit` of them.
  void count_lookup(int64_t queried, int64_t hit);
  PrefixCacheCounters counters() const;

 private:
  struct Entry {
    bool cached = false;
    BlockHash hash;
    bool evictable = false;
    std::list<int32_t>::iterator lru;  // its place in evictable_ while evictable
  };
  void evict_one();

  model::PagedKvCache& cache_;
  absl::flat_hash_map<BlockHash, int32_t> blocks_;  // hash -> block
  std::vector<Entry> entries_;                       // (num_blocks) by block
  std::list<int32_t> evictable_;                     // least recently released first
  PrefixCacheCounters counters_;
};

}  // namespace plm::serve
