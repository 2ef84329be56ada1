#include "core/tensor.h"

#include <algorithm>
#include <cstring>
#include <sstream>

#include "core/cuda/runtime.h"

namespace plm {

Shape::Shape(std::initializer_list<int64_t> dims) {
  for (int64_t d : dims) push_back(d);
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < rank_; ++i) n *= dims_[i];
  return n;
}

void Shape::push_back(int64_t d) {
  PLM_CHECK_LT(rank_, kMaxRank) << "shape rank limit";
  PLM_CHECK_GE(d, 0) << "negative dimension";
  dims_[rank_++] = d;
}

bool Shape::operator==(const Shape& other) const {
  if (rank_ != other.rank_) return false;
  for (int i = 0; i < rank_; ++i) {
    if (dims_[i] != other.dims_[i]) return false;
  }
  return true;
}

std::string Shape::to_string() const {
  std::ostringstream os;
  os << "(";
  for (int i = 0; i < rank_; ++i) os << (i ? ", " : "") << dims_[i];
  os << ")";
  return os.str();
}

int Shape::normalize(int dim) const {
  const int d = dim < 0 ? dim + rank_ : dim;
  PLM_CHECK(d >= 0 && d < rank_) << "dim " << dim << " out of range for rank " << rank_;
  return d;
}

std::string Device::to_string() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

Shape contiguous_strides(const Shape& shape) {
  Shape strides = shape;
  int64_t running = 1;
  for (int i = shape.rank() - 1; i >= 0; --i) {
    strides[i] = running;
    running *= shape[i];
  }
  return strides;
}

Tensor::Tensor(void* data, Shape shape, DType dtype, Device device)
    : data_(data), shape_(shape), strides_(contiguous_strides(shape)), dtype_(dtype), device_(device) {}

Tensor::Tensor(void* data, Shape shape, Shape strides, DType dtype, Device device)
    : data_(data), shape_(shape), strides_(strides), dtype_(dtype), device_(device) {
  PLM_CHECK_EQ(shape.rank(), strides.rank());
}

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int i = rank() - 1; i >= 0; --i) {
    if (shape_[i] != 1 && strides_[i] != expected) return false;
    expected *= shape_[i];
  }
  return true;
}

Tensor Tensor::reshape(Shape shape) const {
  PLM_CHECK(is_contiguous()) << "reshape of a strided view " << describe();
  PLM_CHECK_EQ(shape.numel(), numel()) << "reshape " << describe() << " to " << shape.to_string();
  return Tensor(data_, shape, dtype_, device_);
}

Tensor Tensor::slice(int dim, int64_t start, int64_t end) const {
  const int64_t n = size(dim);
  PLM_CHECK(0 <= start && start <= end && end <= n)
      << "slice [" << start << ", " << end << ") of dim " << dim << " in " << describe();
  Shape shape = shape_;
  shape[dim] = end - start;
  char* base = static_cast<char*>(data_) + start * stride(dim) * static_cast<int64_t>(dtype_size(dtype_));
  return Tensor(base, shape, strides_, dtype_, device_);
}

Tensor Tensor::select(int dim, int64_t index) const {
  const int d = dim < 0 ? dim + rank() : dim;
  PLM_CHECK(0 <= index && index < size(d)) << "select " << index << " of dim " << dim << " in " << describe();
  Shape shape, strides;
  for (int i = 0; i < rank(); ++i) {
    if (i == d) continue;
    shape.push_back(shape_[i]);
    strides.push_back(strides_[i]);
  }
  char* base = static_cast<char*>(data_) + index * stride(d) * static_cast<int64_t>(dtype_size(dtype_));
  return Tensor(base, shape, strides, dtype_, device_);
}

Tensor Tensor::as_matrix() const {
  PLM_CHECK_GE(rank(), 1);
  const int64_t cols = size(-1);
  return reshape({cols == 0 ? 0 : numel() / cols, cols});
}

std::string Tensor::describe() const {
  return std::string(dtype_name(dtype_)) + shape_.to_string() + " " + device_.to_string();
}

OwnedTensor::OwnedTensor(Shape shape, DType dtype, Device device)
    : buffer_(static_cast<size_t>(shape.numel()) * dtype_size(dtype), device),
      view_(buffer_.data(), shape, dtype, device) {}

namespace {

// Row pitch in elements of a 2-D view whose rows are contiguous, or -1 if it is not such a view.
int64_t row_pitch(const Tensor& t) {
  if (t.rank() != 2 || (t.stride(1) != 1 && t.size(1) > 1)) return -1;
  return t.size(0) > 1 ? t.stride(0) : t.size(1);
}

}  // namespace

void copy_tensor(Tensor dst, Tensor src, Stream stream) {
  PLM_CHECK(dst.shape() == src.shape()) << "copy " << src.describe() << " into " << dst.describe();
  PLM_CHECK(dst.dtype() == src.dtype()) << "copy " << src.describe() << " into " << dst.describe();
  if (src.numel() == 0) return;
  const bool host_only = dst.device().is_cpu() && src.device().is_cpu();
  if (dst.is_contiguous() && src.is_contiguous()) {
    if (host_only) {
      std::memcpy(dst.data(), src.data(), src.nbytes());
    } else {
      cuda_memcpy_async(dst.data(), src.data(), src.nbytes(), stream);
    }
    return;
  }
  const int64_t dst_pitch = row_pitch(dst), src_pitch = row_pitch(src);
  PLM_CHECK(dst_pitch >= 0 && src_pitch >= 0)
      << "copy needs contiguous tensors or 2-D views with contiguous rows: " << src.describe() << " into "
      << dst.describe();
  const size_t elem = dtype_size(src.dtype());
  const size_t row_bytes = static_cast<size_t>(src.size(1)) * elem;
  if (host_only) {
    for (int64_t r = 0; r < src.size(0); ++r) {
      std::memcpy(static_cast<char*>(dst.data()) + r * dst_pitch * elem,
                  static_cast<const char*>(src.data()) + r * src_pitch * elem, row_bytes);
    }
  } else {
    cuda_memcpy_2d_async(dst.data(), dst_pitch * elem, src.data(), src_pitch * elem, row_bytes,
                         static_cast<size_t>(src.size(0)), stream);
  }
}

OwnedTensor to_device(Tensor src, Device device) {
  OwnedTensor out(src.shape(), src.dtype(), device);
  copy_tensor(out, src);
  if (device.is_cuda() || src.is_cuda()) cuda_synchronize_device();
  return out;
}

OwnedTensor host_i32(const std::vector<int32_t>& values) {
  OwnedTensor t({static_cast<int64_t>(values.size())}, DType::kI32);
  std::copy(values.begin(), values.end(), t.data_as<int32_t>());
  return t;
}

}  // namespace plm
