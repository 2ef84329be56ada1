#include "core/host_block_cache.h"

#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace plm {

namespace {

constexpr size_t kMaxOversizeFactor = 2;

size_t default_max_cached_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page_bytes = sysconf(_SC_PAGE_SIZE);
  const size_t eighth = pages > 0 && page_bytes > 0 ? static_cast<size_t>(pages) * static_cast<size_t>(page_bytes) / 8
                                                     : 0;
  const char* env = std::getenv("PLM_HOST_CACHE_BYTES");
  if (env == nullptr || *env == '\0') return eighth;
  size_t bytes = 0;
  const char* end = env + std::strlen(env);
  const auto [rest, error] = std::from_chars(env, end, bytes);
  if (error != std::errc() || rest != end) {
    std::fprintf(stderr, "plm: PLM_HOST_CACHE_BYTES=%s is not a byte count; caching up to %zu bytes\n", env, eighth);
    return eighth;
  }
  return bytes;
}

}  // namespace

HostBlockCache& HostBlockCache::instance() {
  static HostBlockCache* cache = new HostBlockCache(default_max_cached_bytes());  // never destroyed: Buffers in
  return *cache;                                                                  // statics may outlive it
}

HostBlockCache::~HostBlockCache() { empty(); }

void* HostBlockCache::allocate(size_t nbytes, size_t* capacity) {
  const size_t rounded = (nbytes + kAlignment - 1) / kAlignment * kAlignment;
  if (rounded >= kMinBlockBytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto best = blocks_.end();
    for (auto it = blocks_.begin(); it != blocks_.end(); ++it) {
      if (it->first >= rounded && it->first <= rounded * kMaxOversizeFactor &&
          (best == blocks_.end() || it->first < best->first)) {
        best = it;
      }
    }
    if (best != blocks_.end()) {
      *capacity = best->first;
      void* block = best->second;
      stats_.bytes_cached -= best->first;
      blocks_.erase(best);
      ++stats_.hits;
      return block;
    }
    ++stats_.misses;
    // Make room first, so a cache of smaller blocks does not sit beside the new one.
    trim_locked(max_cached_bytes_ > rounded ? max_cached_bytes_ - rounded : 0);
  }
  *capacity = rounded;
  return std::aligned_alloc(kAlignment, rounded);
}

void HostBlockCache::free(void* block, size_t capacity) {
  if (block == nullptr) return;
  if (capacity < kMinBlockBytes || capacity > max_cached_bytes_) {
    std::free(block);
    return;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  trim_locked(max_cached_bytes_ - capacity);
  blocks_.emplace_back(capacity, block);
  stats_.bytes_cached += capacity;
}

void HostBlockCache::empty() {
  std::lock_guard<std::mutex> lock(mutex_);
  trim_locked(0);
}

void HostBlockCache::trim_locked(size_t max_bytes) {
  while (stats_.bytes_cached > max_bytes && !blocks_.empty()) {
    std::free(blocks_.front().second);
    stats_.bytes_cached -= blocks_.front().first;
    blocks_.pop_front();
  }
}

HostBlockCacheStats HostBlockCache::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

}  // namespace plm
