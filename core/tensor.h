// Tensor: a non-owning, cheap-to-copy view (data pointer, shape, strides in elements, dtype, device).
// OwnedTensor owns its bytes (a Buffer) and converts to a Tensor view. Views never keep memory alive:
// the owner must outlive every view of it.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "core/buffer.h"
#include "core/check.h"
#include "core/device.h"
#include "core/dtype.h"

namespace plm {

inline constexpr int kMaxRank = 6;

class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims);
  template <typename It>
  Shape(It first, It last) {
    for (; first != last; ++first) push_back(static_cast<int64_t>(*first));
  }

  int rank() const { return rank_; }
  int64_t operator[](int dim) const { return dims_[normalize(dim)]; }
  int64_t& operator[](int dim) { return dims_[normalize(dim)]; }
  int64_t numel() const;
  void push_back(int64_t d);
  const int64_t* begin() const { return dims_.data(); }
  const int64_t* end() const { return dims_.data() + rank_; }
  bool operator==(const Shape& other) const;
  std::string to_string() const;  // "(2, 3, 4)"

 private:
  int normalize(int dim) const;
  std::array<int64_t, kMaxRank> dims_{};
  int rank_ = 0;
};

class Tensor {
 public:
  Tensor() = default;  // undefined: defined() is false; used for optional arguments
  Tensor(void* data, Shape shape, DType dtype, Device device = Device::cpu());  // contiguous
  Tensor(void* data, Shape shape, Shape strides, DType dtype, Device device);

  bool defined() const { return data_ != nullptr || shape_.rank() > 0; }
  void* data() const { return data_; }
  template <typename T>
  T* data_as() const {
    PLM_CHECK(dtype_ == DTypeOf<T>::value) << "tensor holds " << dtype_name(dtype_) << ", asked for "
                                           << dtype_name(DTypeOf<T>::value);
    return static_cast<T*>(data_);
  }

  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int rank() const { return shape_.rank(); }
  int64_t size(int dim) const { return shape_[dim]; }
  int64_t stride(int dim) const { return strides_[dim]; }
  int64_t numel() const { return shape_.numel(); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  bool is_cuda() const { return device_.is_cuda(); }
  bool is_contiguous() const;

  // Views. reshape needs a contiguous tensor; slice keeps [start, end) of one dim; select drops a dim.
  Tensor reshape(Shape shape) const;
  Tensor slice(int dim, int64_t start, int64_t end) const;
  Tensor select(int dim, int64_t index) const;
  // Collapses all leading dims: (..., n) -> (rows, n). Needs a contiguous tensor.
  Tensor as_matrix() const;

  std::string describe() const;  // "bf16(2, 3) cuda:0"

 private:
  void* data_ = nullptr;
  Shape shape_;
  Shape strides_;
  DType dtype_ = DType::kF32;
  Device device_ = Device::cpu();
};

// Owns a contiguous tensor's storage. Move-only; converts implicitly to its view.
class OwnedTensor {
 public:
  OwnedTensor() = default;
  OwnedTensor(Shape shape, DType dtype, Device device = Device::cpu());
  OwnedTensor(OwnedTensor&&) noexcept = default;
  OwnedTensor& operator=(OwnedTensor&&) noexcept = default;
  OwnedTensor(const OwnedTensor&) = delete;
  OwnedTensor& operator=(const OwnedTensor&) = delete;

  const Tensor& view() const { return view_; }
  operator Tensor() const { return view_; }  // NOLINT: views are the currency of kernels
  template <typename T>
  T* data_as() const { return view_.data_as<T>(); }
  const Shape& shape() const { return view_.shape(); }
  int64_t size(int dim) const { return view_.size(dim); }
  int64_t numel() const { return view_.numel(); }
  DType dtype() const { return view_.dtype(); }
  Device device() const { return view_.device(); }
  // Changes the shape this owner presents (same element count), e.g. a checkpoint's [1, S, D] to [S, D].
  void reshape(Shape shape) { view_ = view_.reshape(shape); }

 private:
  Buffer buffer_;
  Tensor view_;
};

// Contiguous-shape helpers.
Shape contiguous_strides(const Shape& shape);

// Copies elements between any two devices (H2D, D2H, D2D, H2H). Shapes and dtypes must match; each side
// is contiguous or a matrix view with contiguous rows (e.g. a column block: t.slice(1, begin, end) of a
// 2-D tensor), which is what gathering or splitting along the last dim needs. Asynchronous on `stream`
// when a CUDA device is involved.
void copy_tensor(Tensor dst, Tensor src, Stream stream = {});

// A contiguous copy of `src` on `device`, synchronised (for tests and setup, not hot paths).
OwnedTensor to_device(Tensor src, Device device);

// A host i32 tensor (N) holding `values` (token ids, positions, lengths).
OwnedTensor host_i32(const std::vector<int32_t>& values);

}  // namespace plm
