#include "core/arena.h"

namespace plm {

Arena::Arena(size_t capacity_bytes, Device device) : buffer_(Buffer::recycled(capacity_bytes, device)) {}

Tensor Arena::alloc(Shape shape, DType dtype) {
  const size_t nbytes = static_cast<size_t>(shape.numel()) * dtype_size(dtype);
  const size_t start = (offset_ + kAlignment - 1) / kAlignment * kAlignment;
  PLM_CHECK_LE(start + nbytes, capacity())
      << "arena of " << capacity() << " bytes cannot hold " << nbytes << " more bytes for "
      << shape.to_string() << " (" << offset_ << " in use)";
  offset_ = start + nbytes;
  if (offset_ > peak_) peak_ = offset_;
  return Tensor(static_cast<char*>(buffer_.data()) + start, shape, dtype, buffer_.device());
}

Tensor ArenaSizer::alloc(Shape shape, DType dtype) {
  const size_t start = (bytes_ + Arena::kAlignment - 1) / Arena::kAlignment * Arena::kAlignment;
  bytes_ = start + static_cast<size_t>(shape.numel()) * dtype_size(dtype);
  return Tensor(nullptr, shape, dtype);
}

void Arena::release_to(size_t mark) {
  PLM_CHECK_LE(mark, offset_) << "release_to a mark above the current offset";
  offset_ = mark;
}

}  // namespace plm
