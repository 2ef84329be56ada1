#include "core/buffer.h"

#include <cstdlib>
#include <new>
#include <utility>

#include "core/check.h"
#include "core/cuda/caching_allocator.h"
#include "core/host_block_cache.h"

namespace plm {

Buffer::Buffer(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  if (nbytes == 0) return;
  if (device.is_cpu()) {
    const size_t rounded = (nbytes + HostBlockCache::kAlignment - 1) / HostBlockCache::kAlignment *
                           HostBlockCache::kAlignment;
    data_ = std::aligned_alloc(HostBlockCache::kAlignment, rounded);
    if (data_ == nullptr) throw std::bad_alloc();
  } else {
    data_ = CachingAllocator::for_device(device.index).allocate(nbytes);
  }
}

Buffer Buffer::recycled(size_t nbytes, Device device) {
  if (nbytes == 0 || !device.is_cpu()) return Buffer(nbytes, device);
  Buffer buffer;
  buffer.nbytes_ = nbytes;
  buffer.device_ = device;
  buffer.recycled_ = true;
  buffer.data_ = HostBlockCache::instance().allocate(nbytes, &buffer.capacity_);
  if (buffer.data_ == nullptr) throw std::bad_alloc();
  return buffer;
}

Buffer::~Buffer() { release(); }

Buffer::Buffer(Buffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      nbytes_(std::exchange(other.nbytes_, 0)),
      capacity_(std::exchange(other.capacity_, 0)),
      recycled_(std::exchange(other.recycled_, false)),
      device_(other.device_) {}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    nbytes_ = std::exchange(other.nbytes_, 0);
    capacity_ = std::exchange(other.capacity_, 0);
    recycled_ = std::exchange(other.recycled_, false);
    device_ = other.device_;
  }
  return *this;
}

void Buffer::release() {
  if (data_ == nullptr) return;
  if (device_.is_cpu()) {
    if (recycled_) {
      HostBlockCache::instance().free(data_, capacity_);
    } else {
      std::free(data_);
    }
  } else {
    CachingAllocator::for_device(device_.index).free(data_);
  }
  data_ = nullptr;
  nbytes_ = 0;
  capacity_ = 0;
  recycled_ = false;
}

}  // namespace plm
