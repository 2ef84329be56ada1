// HostBlockCache: keeps freed large CPU blocks for the next Buffer of a similar size. Every forward builds its
// activation arena afresh; a block of tens of MiB or more comes from mmap and goes back to the kernel when freed,
// so each call would page-fault and zero its whole arena again (4 % of a vision encode measured, page faults plus
// clearing, on 2 cores). Reuse is best fit: the smallest cached block at least as large as the request and at most
// twice its size (as CachingAllocator does for CUDA). Cached bytes are bounded: past the bound the oldest cached
// blocks go back to the system. Thread-safe.
#pragma once

#include <cstddef>
#include <list>
#include <mutex>
#include <utility>

namespace plm {

struct HostBlockCacheStats {
  size_t bytes_cached = 0;
  size_t hits = 0;    // allocations served from the cache
  size_t misses = 0;  // cacheable allocations that went to the system
};

class HostBlockCache {
 public:
  static constexpr size_t kMinBlockBytes = size_t{1} << 20;  // smaller blocks: malloc's own free lists reuse them
  static constexpr size_t kAlignment = 256;                   // Arena offsets align on it (matches cudaMalloc)

  // The process's cache, bounded by an eighth of physical memory (PLM_HOST_CACHE_BYTES overrides; 0 disables).
  static HostBlockCache& instance();
  explicit HostBlockCache(size_t max_cached_bytes) : max_cached_bytes_(max_cached_bytes) {}
  ~HostBlockCache();
  HostBlockCache(const HostBlockCache&) = delete;
  HostBlockCache& operator=(const HostBlockCache&) = delete;

  // A block of at least nbytes (its usable size in *capacity), kAlignment-aligned; null when out of memory.
  void* allocate(size_t nbytes, size_t* capacity);
  // Takes back a block from allocate() with its capacity: cached, or freed when it does not fit the bound.
  void free(void* block, size_t capacity);
  void empty();
  HostBlockCacheStats stats() const;

 private:
  void trim_locked(size_t max_bytes);

  const size_t max_cached_bytes_;
  mutable std::mutex mutex_;
  std::list<std::pair<size_t, void*>> blocks_;  // (capacity, block), oldest first
  HostBlockCacheStats stats_;
};

}  // namespace plm
