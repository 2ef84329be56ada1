// Softmax over the last dim on CUDA: one block per row, max-subtracted, f32 sums, rounded once. In place
// is safe: each thread reads its elements before the block-wide reductions and writes only those.
#include "core/kernels/backends.h"
#include "core/kernels/cuda/cuda_common.cuh"

namespace plm::cuda {
namespace {

// y, x: (N, D). Grid N, block kThreads.
template <typename T>
__global__ void softmax_forward_kernel(T* y, const T* x, int64_t dim) {
  const int64_t offset = int64_t{blockIdx.x} * dim;
  float row_max = MaxOp::kIdentity;
  for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) row_max = fmaxf(row_max, to_float(x[offset + d]));
  row_max = block_max(row_max);
  float sum = 0.0f;
  for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) sum += expf(to_float(x[offset + d]) - row_max);
  sum = block_sum(sum);
  for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) {
    y[offset + d] = from_float<T>(expf(to_float(x[offset + d]) - row_max) / sum);
  }
}

// dx = y * (dy - sum(dy * y)).
template <typename T>
__global__ void softmax_backward_kernel(T* dx, const T* dy, const T* y, int64_t dim) {
  const int64_t offset = int64_t{blockIdx.x} * dim;
  float dot = 0.0f;
  for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) dot += to_float(dy[offset + d]) * to_float(y[offset + d]);
  dot = block_sum(dot);
  for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) {
    dx[offset + d] = from_float<T>(to_float(y[offset + d]) * (to_float(dy[offset + d]) - dot));
  }
}

}  // namespace

void softmax_forward(Tensor y, Tensor x, Stream s) {
  const char* op = "softmax_forward";
  check_elementwise_tensors(op, {y, x});
  PLM_CHECK(x.rank() >= 1) << op << ": wants (..., D), got " << x.describe();
  const int64_t num_rows = num_rows_of(x);
  if (num_rows == 0) return;
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    softmax_forward_kernel<<<row_grid(op, num_rows), kThreads, 0, as_cuda_stream(s)>>>(
        data_ptr<T>(y), data_ptr<const T>(x), x.size(-1));
    PLM_CUDA_CHECK_LAUNCH();
  });
}

void softmax_backward(Tensor dx, Tensor dy, Tensor y, Stream s) {
  const char* op = "softmax_backward";
  check_elementwise_tensors(op, {dx, dy, y});
  PLM_CHECK(y.rank() >= 1) << op << ": wants (..., D), got " << y.describe();
  const int64_t num_rows = num_rows_of(y);
  if (num_rows == 0) return;
  dispatch_float(y.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    softmax_backward_kernel<<<row_grid(op, num_rows), kThreads, 0, as_cuda_stream(s)>>>(
        data_ptr<T>(dx), data_ptr<const T>(dy), data_ptr<const T>(y), y.size(-1));
    PLM_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace plm::cuda
