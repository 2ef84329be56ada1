#include "serve/prefix_cache.h"

#include "core/check.h"

namespace plm::serve {

PrefixCache::PrefixCache(model::PagedKvCache& cache)
    : cache_(cache), entries_(static_cast<size_t>(cache.num_blocks())) {}

std::vector<int32_t> PrefixCache::match(std::span<const BlockHash> hashes) const {
  std::vector<int32_t> blocks;
  for (const BlockHash& hash : hashes) {
    const auto it = blocks_.find(hash);
    if (it == blocks_.end()) break;
    blocks.push_back(it->second);
  }
  return blocks;
}

void PrefixCache::acquire(std::span<const int32_t> blocks) {
  for (const int32_t block : blocks) {
    Entry& e = entries_[block];
    PLM_CHECK(e.cached) << "KV block " << block << " is not in the prefix cache";
    if (e.evictable) {
      evictable_.erase(e.lru);
      e.evictable = false;
    }
  }
}

void PrefixCache::release(std::span<const int32_t> blocks) {
  for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) {
    Entry& e = entries_[*it];
    if (!e.cached || cache_.ref_count(*it) != 1) continue;
    e.evictable = true;
    e.lru = evictable_.insert(evictable_.end(), *it);
  }
}

void PrefixCache::insert(const BlockHash& hash, int32_t block) {
  PLM_CHECK(cache_.is_full(block) && cache_.ref_count(block) > 0) << "KV block " << block << " is not full and in use";
  if (!blocks_.try_emplace(hash, block).second) return;
  Entry& e = entries_[block];
  PLM_CHECK(!e.cached) << "KV block " << block << " is in the prefix cache under another hash";
  e = {.cached = true, .hash = hash, .evictable = false, .lru = {}};
  cache_.retain_block(block);
}

void PrefixCache::evict_one() {
  const int32_t block = evictable_.front();
  evictable_.pop_front();
  Entry& e = entries_[block];
  blocks_.erase(e.hash);
  e = Entry();
  cache_.release_block(block);
  ++counters_.evictions;
}

bool PrefixCache::make_free(int64_t blocks) {
  if (cache_.num_free_blocks() + num_evictable() < blocks) return false;
  while (cache_.num_free_blocks() < blocks) evict_one();
  return true;
}

void PrefixCache::count_lookup(int64_t queried, int64_t hit) {
  counters_.queried_tokens += queried;
  counters_.hit_tokens += hit;
}

PrefixCacheCounters PrefixCache::counters() const {
  PrefixCacheCounters c = counters_;
  c.cached_blocks = static_cast<int64_t>(blocks_.size());
  c.evictable_blocks = num_evictable();
  return c;
}

}  // namespace plm::serve
