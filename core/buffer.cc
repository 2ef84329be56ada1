#include "core/buffer.h"

#include <cstdlib>
#include <new>
#include <utility>

#include "core/check.h"
#include "core/cuda/caching_allocator.h"

namespace plm {

namespace {
constexpr size_t kCpuAlignment = 256;  // matches cudaMalloc, so Arena offsets align on both
}

Buffer::Buffer(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  if (nbytes == 0) return;
  if (device.is_cpu()) {
    const size_t rounded = (nbytes + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
    data_ = std::aligned_alloc(kCpuAlignment, rounded);
    if (data_ == nullptr) throw std::bad_alloc();
  } else {
    data_ = CachingAllocator::for_device(device.index).allocate(nbytes);
  }
}

Buffer::~Buffer() { release(); }

Buffer::Buffer(Buffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      nbytes_(std::exchange(other.nbytes_, 0)),
      device_(other.device_) {}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    nbytes_ = std::exchange(other.nbytes_, 0);
    device_ = other.device_;
  }
  return *this;
}

void Buffer::release() {
  if (data_ == nullptr) return;
  if (device_.is_cpu()) {
    std::free(data_);
  } else {
    CachingAllocator::for_device(device_.index).free(data_);
  }
  data_ = nullptr;
  nbytes_ = 0;
}

}  // namespace plm
