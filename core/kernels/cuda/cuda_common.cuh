// Shared pieces of the CUDA kernels: Stream -> cudaStream_t, dtype dispatch to device element types, f32
// load/store conversions, argument checks, the grid-stride launcher of element-wise kernels, and
// warp/block reductions. Kernels compute in f32 and round once on store unless a file says it mirrors
// HF's rounding points (spec/plm_spec.md §6).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <limits>

#include "core/cuda/cuda_check.h"
#include "core/tensor.h"

namespace plm::cuda {

inline cudaStream_t as_cuda_stream(Stream s) { return static_cast<cudaStream_t>(s.handle); }

// ---- Element types ----

template <typename T>
struct TypeTag {
  using type = T;
};

__device__ inline float to_float(float x) { return x; }
__device__ inline float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ inline float to_float(__half x) { return __half2float(x); }

// Round-to-nearest-even, like the host bf16/f16 types in core/dtype.h.
template <typename T>
__device__ T from_float(float x);
template <>
__device__ inline float from_float<float>(float x) { return x; }
template <>
__device__ inline __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
template <>
__device__ inline __half from_float<__half>(float x) { return __float2half_rn(x); }

// x rounded to T's precision and widened back: marks an HF rounding point (identity for f32).
template <typename T>
__device__ inline float round_to(float x) {
  return to_float(from_float<T>(x));
}

// Calls f(TypeTag<T>{}) with T the device element type of `dtype`: float or __nv_bfloat16, and __half
// only when kWithHalf (cast), so no other kernel is instantiated for f16.
template <bool kWithHalf = false, typename F>
void dispatch_float(DType dtype, const char* op, F&& f) {
  switch (dtype) {
    case DType::kF32: f(TypeTag<float>{}); return;
    case DType::kBF16: f(TypeTag<__nv_bfloat16>{}); return;
    case DType::kF16:
      if constexpr (kWithHalf) {
        f(TypeTag<__half>{});
        return;
      }
      break;
    case DType::kI32:
    case DType::kI64:
    case DType::kU8: break;
  }
  PLM_CHECK(false) << op << ": unsupported dtype " << dtype_name(dtype)
                   << (kWithHalf ? " (wants f32, bf16 or f16)" : " (wants f32 or bf16)");
}

// The data pointer as T*; nullptr for an undefined (optional) tensor. The dtype is checked by the caller
// (dispatch_float or check_dtype).
template <typename T>
T* data_ptr(const Tensor& t) {
  return static_cast<T*>(t.data());
}

// ---- Argument checks (programmer errors: abort with the op and the tensors) ----

// Every defined tensor is a contiguous CUDA tensor.
inline void check_cuda_tensors(const char* op, std::initializer_list<Tensor> tensors) {
  for (const Tensor& t : tensors) {
    if (!t.defined()) continue;
    PLM_CHECK(t.is_cuda() && t.is_contiguous()) << op << ": wants contiguous CUDA tensors, got " << t.describe();
  }
}

inline void check_dtype(const char* op, const Tensor& t, DType dtype) {
  PLM_CHECK(t.dtype() == dtype) << op << ": wants " << dtype_name(dtype) << ", got " << t.describe();
}

inline void check_same_shape(const char* op, const Tensor& a, const Tensor& b) {
  PLM_CHECK(a.shape() == b.shape()) << op << ": shapes differ: " << a.describe() << " vs " << b.describe();
}

inline void check_same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  PLM_CHECK(a.dtype() == b.dtype()) << op << ": dtypes differ: " << a.describe() << " vs " << b.describe();
}

// The tensors of an element-wise op: contiguous CUDA tensors of one shape and one dtype.
inline void check_elementwise_tensors(const char* op, std::initializer_list<Tensor> tensors) {
  check_cuda_tensors(op, tensors);
  const Tensor& first = *tensors.begin();
  for (const Tensor& t : tensors) {
    check_same_shape(op, t, first);
    check_same_dtype(op, t, first);
  }
}

// Rows of a (..., D) tensor viewed as (rows, D); 0 when D is 0.
inline int64_t num_rows_of(const Tensor& x) { return x.size(-1) == 0 ? 0 : x.numel() / x.size(-1); }

// ---- Launching ----

inline constexpr int kThreads = 256;          // threads per block, a multiple of the warp size
inline constexpr int64_t kMaxBlocks = 65536;  // grid-stride loops cover larger element counts

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// One block per row (row kernels). gridDim.x is limited to 2^31 - 1.
inline unsigned row_grid(const char* op, int64_t num_rows) {
  PLM_CHECK(num_rows <= std::numeric_limits<int32_t>::max()) << op << ": " << num_rows << " rows exceed the grid";
  return static_cast<unsigned>(num_rows);
}

template <typename F>
__global__ void for_each_kernel(int64_t n, F f) {
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < n; i += stride) f(i);
}

// Runs f(i) for every i in [0, n) on `stream`: the launcher of every element-wise kernel. f is a functor
// with `__device__ void operator()(int64_t i) const` holding its pointers by value.
template <typename F>
void for_each_index(int64_t n, const F& f, Stream stream) {
  if (n == 0) return;
  const auto num_blocks = static_cast<unsigned>(std::min(ceil_div(n, kThreads), kMaxBlocks));
  for_each_kernel<<<num_blocks, kThreads, 0, as_cuda_stream(stream)>>>(n, f);
  PLM_CUDA_CHECK_LAUNCH();
}

// ---- Reductions ----

struct SumOp {
  static constexpr float kIdentity = 0.0f;
  __device__ float operator()(float a, float b) const { return a + b; }
};

struct MaxOp {
  static constexpr float kIdentity = -std::numeric_limits<float>::infinity();
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

// Butterfly over the warp: every lane ends with the same value (each step combines the same pairs).
template <typename Op>
__device__ float warp_reduce(float v, Op op) {
  for (int offset = 16; offset > 0; offset /= 2) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Reduces v over the block and returns the result to every thread. blockDim.x must be a multiple of 32
// and every thread of the block must call it. The order is fixed by thread index: deterministic.
template <typename Op>
__device__ float block_reduce(float v, Op op) {
  __shared__ float warp_results[32];
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int warp = static_cast<int>(threadIdx.x / 32);
  const int num_warps = static_cast<int>(blockDim.x / 32);
  v = warp_reduce(v, op);
  __syncthreads();  // a previous call may still be reading warp_results
  if (lane == 0) warp_results[warp] = v;
  __syncthreads();
  float partial = Op::kIdentity;
  if (lane < num_warps) partial = warp_results[lane];
  return warp_reduce(partial, op);
}

__device__ inline float block_sum(float v) { return block_reduce(v, SumOp{}); }
__device__ inline float block_max(float v) { return block_reduce(v, MaxOp{}); }

}  // namespace plm::cuda
