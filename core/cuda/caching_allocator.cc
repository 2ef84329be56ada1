#include "core/cuda/caching_allocator.h"

#include <memory>
#include <string>
#include <vector>

#include "core/cuda/cuda_check.h"

namespace plm {

namespace {
// Blocks much larger than the request are not handed out, so one huge cached block is not pinned by a
// small tensor.
constexpr size_t kMaxOversizeFactor = 2;
}  // namespace

CachingAllocator& CachingAllocator::for_device(int device) {
  static std::mutex registry_mutex;
  static std::vector<std::unique_ptr<CachingAllocator>> registry;
  std::lock_guard<std::mutex> lock(registry_mutex);
  PLM_CHECK_GE(device, 0);
  if (static_cast<size_t>(device) >= registry.size()) registry.resize(device + 1);
  if (!registry[device]) registry[device].reset(new CachingAllocator(device));
  return *registry[device];
}

void* CachingAllocator::allocate(size_t nbytes) {
  const size_t size = (nbytes + kRoundBytes - 1) / kRoundBytes * kRoundBytes;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = free_blocks_.lower_bound(size);
  void* ptr = nullptr;
  size_t block_size = size;
  if (it != free_blocks_.end() && it->first <= size * kMaxOversizeFactor) {
    block_size = it->first;
    ptr = it->second;
    free_blocks_.erase(it);
    stats_.bytes_cached -= block_size;
  } else {
    int previous = 0;
    PLM_CUDA_CHECK(cudaGetDevice(&previous));
    PLM_CUDA_CHECK(cudaSetDevice(device_));
    cudaError_t err = cudaMalloc(&ptr, size);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      release_cached_locked();
      err = cudaMalloc(&ptr, size);
    }
    PLM_CUDA_CHECK(cudaSetDevice(previous));
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      throw CudaOutOfMemory("CUDA out of memory on device " + std::to_string(device_) + ": asked for " +
                            std::to_string(size) + " bytes with " + std::to_string(stats_.bytes_in_use) +
                            " bytes in use");
    }
    PLM_CUDA_CHECK(err);
    ++stats_.num_device_allocs;
  }
  live_blocks_.emplace(ptr, block_size);
  stats_.bytes_in_use += block_size;
  if (stats_.bytes_in_use > stats_.peak_bytes_in_use) stats_.peak_bytes_in_use = stats_.bytes_in_use;
  return ptr;
}

void CachingAllocator::free(void* ptr) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = live_blocks_.find(ptr);
  PLM_CHECK(it != live_blocks_.end()) << "free of a pointer this allocator did not hand out";
  const size_t size = it->second;
  live_blocks_.erase(it);
  stats_.bytes_in_use -= size;
  stats_.bytes_cached += size;
  free_blocks_.emplace(size, ptr);
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mutex_);
  release_cached_locked();
}

void CachingAllocator::release_cached_locked() {
  for (auto& [size, ptr] : free_blocks_) cudaFree(ptr);
  free_blocks_.clear();
  stats_.bytes_cached = 0;
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

}  // namespace plm
