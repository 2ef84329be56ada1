// CachingAllocator: per-device CUDA memory pool. Freed blocks go back to a size-ordered free list and
// are reused best-fit instead of returning to cudaFree (which synchronises the device).
// Thread-safe. Reuse is in host program order: a block freed while a kernel on another stream still
// reads it must be synchronised by the caller first (plm runs each rank's compute on one stream).
// Out of memory: frees the cache and retries once, then throws CudaOutOfMemory naming the sizes.
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

namespace plm {

class CudaOutOfMemory : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct AllocatorStats {
  size_t bytes_in_use = 0;
  size_t bytes_cached = 0;   // held in free lists
  size_t peak_bytes_in_use = 0;
  size_t num_device_allocs = 0;  // cudaMalloc calls
};

class CachingAllocator {
 public:
  static CachingAllocator& for_device(int device);  // one per device, created on first use

  void* allocate(size_t nbytes);
  void free(void* ptr);
  void empty_cache();  // returns every cached block to the driver
  AllocatorStats stats() const;

  // Requests are rounded up to this granularity so nearby sizes share blocks.
  static constexpr size_t kRoundBytes = 512;

  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

 private:
  explicit CachingAllocator(int device) : device_(device) {}
  void release_cached_locked();

  const int device_;
  mutable std::mutex mutex_;
  std::multimap<size_t, void*> free_blocks_;     // size -> block
  std::unordered_map<void*, size_t> live_blocks_;  // block -> size
  AllocatorStats stats_;
};

}  // namespace plm
