// Reductions on CUDA: sum_rows (column sums, e.g. bias grads), the f32 scalars sum and sum_squares
// (gradient norms), and row_norms (one block per row). All are deterministic: fixed block partitions that
// depend only on the shape, partial sums in f32 scratch, and a second pass that adds the partials in a fixed
// order.
#include <algorithm>

#include "core/buffer.h"
#include "core/kernels/backends.h"
#include "core/kernels/cuda/column_sum.cuh"
#include "core/kernels/cuda/cuda_common.cuh"

namespace plm::cuda {
namespace {

constexpr int64_t kMaxReduceBlocks = 1024;  // partials of the first pass; the second pass is one block

// out[blockIdx.x] = sum of value(i) over the block's grid-stride share of [0, n).
template <typename F>
__global__ void partial_sums_kernel(float* out, int64_t n, F value) {
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  float sum = 0.0f;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < n; i += stride) sum += value(i);
  sum = block_sum(sum);
  if (threadIdx.x == 0) out[blockIdx.x] = sum;
}

template <typename T>
struct Element {
  const T* x;
  __device__ float operator()(int64_t i) const { return to_float(x[i]); }
};

template <typename T>
struct Squared {
  const T* x;
  __device__ float operator()(int64_t i) const {
    const float v = to_float(x[i]);
    return v * v;
  }
};

// x (N, D): value(row, col) for column_sum.
template <typename T>
struct MatrixElement {
  const T* x;
  int64_t dim;
  __device__ float operator()(int64_t row, int64_t col) const { return to_float(x[row * dim + col]); }
};

// out (1) f32 = sum over i in [0, n) of value(i): partial sums of a fixed number of blocks, then one block.
template <typename F>
void scalar_sum(const char* op, Tensor out, int64_t n, const F& value, Stream s) {
  check_cuda_tensors(op, {out});
  check_dtype(op, out, DType::kF32);
  PLM_CHECK(out.numel() == 1) << op << ": wants a one-element output, got " << out.describe();
  const int64_t num_blocks = std::min(ceil_div(n, kThreads), kMaxReduceBlocks);
  // Scratch freed on return: safe on one stream (see core/kernels/cuda/column_sum.cuh).
  Buffer partials(static_cast<size_t>(num_blocks) * sizeof(float), out.device());
  float* partials_data = static_cast<float*>(partials.data());
  const cudaStream_t stream = as_cuda_stream(s);
  if (num_blocks > 0) {
    partial_sums_kernel<<<static_cast<unsigned>(num_blocks), kThreads, 0, stream>>>(partials_data, n, value);
    PLM_CUDA_CHECK_LAUNCH();
  }
  partial_sums_kernel<<<1, kThreads, 0, stream>>>(data_ptr<float>(out), num_blocks, Element<float>{partials_data});
  PLM_CUDA_CHECK_LAUNCH();
}

// out[row] = sqrt(sum of x[row, :]^2), one block per row, f32 accumulation in a fixed order.
template <typename T, typename Out>
__global__ void row_norms_kernel(Out* out, const T* x, int64_t dim) {
  const T* row = x + int64_t{blockIdx.x} * dim;
  float squares = 0.0f;
  for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) {
    const float v = to_float(row[d]);
    squares += v * v;
  }
  squares = block_sum(squares);
  if (threadIdx.x == 0) out[blockIdx.x] = from_float<Out>(sqrtf(squares));
}

}  // namespace

void sum_rows(Tensor out, Tensor x, bool accumulate, Stream s) {
  const char* op = "sum_rows";
  check_cuda_tensors(op, {out, x});
  PLM_CHECK(x.rank() >= 1 && out.numel() == x.size(-1))
      << op << ": wants x (..., D) and out (D); got " << x.describe() << ", " << out.describe();
  PLM_CHECK(out.dtype() == x.dtype() || out.dtype() == DType::kF32)
      << op << ": out must be f32 or x's dtype; got " << out.describe() << " for " << x.describe();
  dispatch_float(x.dtype(), op, [&](auto in_tag) {
    using T = typename decltype(in_tag)::type;
    dispatch_float(out.dtype(), op, [&](auto out_tag) {
      using Out = typename decltype(out_tag)::type;
      column_sum(op, data_ptr<Out>(out), MatrixElement<T>{data_ptr<const T>(x), x.size(-1)}, num_rows_of(x),
                 x.size(-1), accumulate, out.device(), s);
    });
  });
}

void sum(Tensor out, Tensor x, Stream s) {
  check_cuda_tensors("sum", {x});
  dispatch_float(x.dtype(), "sum", [&](auto tag) {
    using T = typename decltype(tag)::type;
    scalar_sum("sum", out, x.numel(), Element<T>{data_ptr<const T>(x)}, s);
  });
}

void sum_squares(Tensor out, Tensor x, Stream s) {
  check_cuda_tensors("sum_squares", {x});
  dispatch_float(x.dtype(), "sum_squares", [&](auto tag) {
    using T = typename decltype(tag)::type;
    scalar_sum("sum_squares", out, x.numel(), Squared<T>{data_ptr<const T>(x)}, s);
  });
}

void row_norms(Tensor out, Tensor x, Stream s) {
  const char* op = "row_norms";
  check_cuda_tensors(op, {out, x});
  PLM_CHECK(x.rank() == 2 && out.rank() == 1 && out.size(0) == x.size(0))
      << op << ": wants x (N, D) and out (N); got " << x.describe() << ", " << out.describe();
  PLM_CHECK(out.dtype() == x.dtype() || out.dtype() == DType::kF32)
      << op << ": out must be f32 or x's dtype; got " << out.describe() << " for " << x.describe();
  if (x.size(0) == 0) return;
  dispatch_float(x.dtype(), op, [&](auto in_tag) {
    using T = typename decltype(in_tag)::type;
    dispatch_float(out.dtype(), op, [&](auto out_tag) {
      using Out = typename decltype(out_tag)::type;
      row_norms_kernel<<<row_grid(op, x.size(0)), kThreads, 0, as_cuda_stream(s)>>>(
          data_ptr<Out>(out), data_ptr<const T>(x), x.size(1));
      PLM_CUDA_CHECK_LAUNCH();
    });
  });
}

}  // namespace plm::cuda
