// Arena: a bump allocator for activations over one Buffer. alloc() hands out aligned views; mark() and
// release_to() free everything allocated after a mark (stack discipline, e.g. per layer), reset() frees
// all. Not thread-safe. Running out of capacity is a sizing bug and fails a check with the numbers.
#pragma once

#include <cstddef>

#include "core/buffer.h"
#include "core/tensor.h"

namespace plm {

class Arena {
 public:
  static constexpr size_t kAlignment = 256;  // cuBLASLt and vectorised kernels want 16+; 256 keeps rows tidy

  Arena(size_t capacity_bytes, Device device);
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  Tensor alloc(Shape shape, DType dtype);
  size_t mark() const { return offset_; }
  void release_to(size_t mark);
  void reset() { offset_ = 0; }

  size_t bytes_used() const { return offset_; }
  size_t peak_bytes() const { return peak_; }
  size_t capacity() const { return buffer_.nbytes(); }
  Device device() const { return buffer_.device(); }

 private:
  Buffer buffer_;
  size_t offset_ = 0;
  size_t peak_ = 0;
};

// Counts the bytes a sequence of Arena::alloc calls takes (the same alignment), so a caller can size an
// arena exactly by running its allocation code against a sizer first. alloc() returns a data-less view.
class ArenaSizer {
 public:
  Tensor alloc(Shape shape, DType dtype);
  size_t bytes() const { return bytes_; }

 private:
  size_t bytes_ = 0;
};

}  // namespace plm
