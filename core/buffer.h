// Buffer: owning, move-only bytes on one device. CPU memory is 256-byte aligned; a recycled() buffer (an Arena's)
// takes and returns large blocks through HostBlockCache (core/host_block_cache.h), so per-call arenas do not
// page-fault afresh, while weights and other long-lived buffers go back to the system. CUDA memory comes from
// the per-device caching allocator (core/cuda/caching_allocator.h), so freeing is cheap and stream-ordered
// reuse is the allocator's job.
#pragma once

#include <cstddef>

#include "core/device.h"

namespace plm {

class Buffer {
 public:
  Buffer() = default;
  Buffer(size_t nbytes, Device device);
  // For scratch that is built and dropped per call (activation arenas): CPU blocks come from and return to
  // HostBlockCache.
  static Buffer recycled(size_t nbytes, Device device);
  ~Buffer();
  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void release();
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  size_t capacity_ = 0;  // CPU, recycled: the block's usable bytes (>= nbytes_), what HostBlockCache takes back
  bool recycled_ = false;
  Device device_ = Device::cpu();
};

}  // namespace plm
