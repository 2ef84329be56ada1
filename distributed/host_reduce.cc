#include "distributed/host_reduce.h"

#include <algorithm>

#include "core/check.h"

namespace plm::distributed {

namespace {

template <typename T>
T combine(T a, T b, ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg: return a + b;
    case ReduceOp::kMax: return std::max(a, b);
  }
  return a;
}

// Storage types (bf16, f16) go through float.
template <typename Storage>
void reduce_as_float(Storage* acc, const Storage* x, int64_t n, ReduceOp op) {
  for (int64_t i = 0; i < n; ++i) {
    acc[i] = Storage(combine(static_cast<float>(acc[i]), static_cast<float>(x[i]), op));
  }
}

template <typename T>
void reduce_native(T* acc, const T* x, int64_t n, ReduceOp op) {
  for (int64_t i = 0; i < n; ++i) acc[i] = combine(acc[i], x[i], op);
}

}  // namespace

void reduce_into(void* acc, const void* x, int64_t n, DType dtype, ReduceOp op) {
  switch (dtype) {
    case DType::kF32: return reduce_native(static_cast<float*>(acc), static_cast<const float*>(x), n, op);
    case DType::kBF16: return reduce_as_float(static_cast<bf16*>(acc), static_cast<const bf16*>(x), n, op);
    case DType::kF16: return reduce_as_float(static_cast<f16*>(acc), static_cast<const f16*>(x), n, op);
    case DType::kI32: return reduce_native(static_cast<int32_t*>(acc), static_cast<const int32_t*>(x), n, op);
    case DType::kI64: return reduce_native(static_cast<int64_t*>(acc), static_cast<const int64_t*>(x), n, op);
    case DType::kU8: return reduce_native(static_cast<uint8_t*>(acc), static_cast<const uint8_t*>(x), n, op);
  }
}

void divide_in_place(void* data, int64_t n, DType dtype, int divisor) {
  switch (dtype) {
    case DType::kF32:
      for (int64_t i = 0; i < n; ++i) static_cast<float*>(data)[i] /= static_cast<float>(divisor);
      return;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        bf16& v = static_cast<bf16*>(data)[i];
        v = bf16(static_cast<float>(v) / static_cast<float>(divisor));
      }
      return;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) {
        f16& v = static_cast<f16*>(data)[i];
        v = f16(static_cast<float>(v) / static_cast<float>(divisor));
      }
      return;
    case DType::kI32:
    case DType::kI64:
    case DType::kU8: PLM_CHECK(false) << "average of integer tensors is not defined (" << dtype_name(dtype) << ")";
  }
}

}  // namespace plm::distributed
