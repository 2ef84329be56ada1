// RMSNorm on CUDA: one block per row, statistics in f32. bf16 follows HF (spec/plm_spec.md §2.7): x * rstd
// is rounded to bf16 before the product with w, and dw sums dy times that rounded value, as HF autograd
// does. dw is deterministic (column_sum) and optional: undefined when the weight is frozen.
#include "core/kernels/backends.h"
#include "core/kernels/cuda/column_sum.cuh"
#include "core/kernels/cuda/cuda_common.cuh"

namespace plm::cuda {
namespace {

// y, x: (N, D); w: (D); rstd: (N) or nullptr. Grid N, block kThreads.
template <typename T>
__global__ void rmsnorm_forward_kernel(T* y, float* rstd, const T* x, const T* w, float eps, int64_t dim) {
  const int64_t row = blockIdx.x;
  const T* x_row = x + row * dim;
  T* y_row = y + row * dim;
  float sum_squares = 0.0f;
  for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) {
    const float v = to_float(x_row[d]);
    sum_squares += v * v;
  }
  const float r = rsqrtf(block_sum(sum_squares) / static_cast<float>(dim) + eps);
  for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) {
    y_row[d] = from_float<T>(round_to<T>(to_float(x_row[d]) * r) * to_float(w[d]));
  }
  if (threadIdx.x == 0 && rstd != nullptr) rstd[row] = r;
}

// dx = rstd * (g - xhat * mean(g * xhat)) with g = dy * w, xhat = x * rstd. In place (dx == dy or x) is
// safe: each thread reads its elements before the block-wide reduction and writes only those.
template <typename T>
__global__ void rmsnorm_backward_kernel(T* dx, const T* dy, const T* x, const T* w, const float* rstd,
                                        int64_t dim) {
  const int64_t row = blockIdx.x;
  const int64_t offset = row * dim;
  const float r = rstd[row];
  float g_dot_xhat = 0.0f;
  for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) {
    g_dot_xhat += to_float(dy[offset + d]) * to_float(w[d]) * (to_float(x[offset + d]) * r);
  }
  const float mean_g_xhat = block_sum(g_dot_xhat) / static_cast<float>(dim);
  for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) {
    const float xhat = to_float(x[offset + d]) * r;
    const float g = to_float(dy[offset + d]) * to_float(w[d]);
    dx[offset + d] = from_float<T>(r * (g - xhat * mean_g_xhat));
  }
}

// dw[d] = sum_n dy[n, d] * round_T(x[n, d] * rstd[n]).
template <typename T>
struct RmsNormWeightGrad {
  const T* dy;
  const T* x;
  const float* rstd;
  int64_t dim;
  __device__ float operator()(int64_t row, int64_t col) const {
    const int64_t i = row * dim + col;
    return to_float(dy[i]) * round_to<T>(to_float(x[i]) * rstd[row]);
  }
};

void check_rmsnorm_args(const char* op, const Tensor& y, const Tensor& rstd, const Tensor& x, const Tensor& w) {
  check_cuda_tensors(op, {y, rstd, x, w});
  check_same_shape(op, y, x);
  check_same_dtype(op, y, x);
  check_same_dtype(op, w, x);
  PLM_CHECK(x.rank() >= 1 && w.rank() == 1 && w.size(0) == x.size(-1))
      << op << ": wants x (..., D) and w (D); got " << x.describe() << ", " << w.describe();
  if (rstd.defined()) {
    check_dtype(op, rstd, DType::kF32);
    PLM_CHECK(rstd.numel() * x.size(-1) == x.numel())
        << op << ": rstd " << rstd.describe() << " does not match the rows of " << x.describe();
  }
}

}  // namespace

void rmsnorm_forward(Tensor y, Tensor rstd, Tensor x, Tensor w, float eps, Stream s) {
  check_rmsnorm_args("rmsnorm_forward", y, rstd, x, w);
  const int64_t num_rows = num_rows_of(x);
  if (num_rows == 0) return;
  dispatch_float(x.dtype(), "rmsnorm_forward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    rmsnorm_forward_kernel<<<row_grid("rmsnorm_forward", num_rows), kThreads, 0, as_cuda_stream(s)>>>(
        data_ptr<T>(y), data_ptr<float>(rstd), data_ptr<const T>(x), data_ptr<const T>(w), eps, x.size(-1));
    PLM_CUDA_CHECK_LAUNCH();
  });
}

void rmsnorm_backward(Tensor dx, Tensor dw, Tensor dy, Tensor x, Tensor w, Tensor rstd, Stream s) {
  const char* op = "rmsnorm_backward";
  PLM_CHECK(rstd.defined()) << op << ": needs the rstd saved by the forward";
  check_rmsnorm_args(op, dx, rstd, x, w);
  check_cuda_tensors(op, {dw, dy});
  check_same_shape(op, dy, x);
  check_same_dtype(op, dy, x);
  if (dw.defined()) {
    check_same_shape(op, dw, w);
    check_same_dtype(op, dw, w);
  }
  const int64_t dim = x.size(-1);
  const int64_t num_rows = num_rows_of(x);
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    // dw first: dx may overwrite dy or x in place.
    if (dw.defined()) {
      column_sum(op, data_ptr<T>(dw),
                 RmsNormWeightGrad<T>{data_ptr<const T>(dy), data_ptr<const T>(x), data_ptr<const float>(rstd), dim},
                 num_rows, dim, /*accumulate=*/true, dw.device(), s);
    }
    if (num_rows == 0) return;
    rmsnorm_backward_kernel<<<row_grid(op, num_rows), kThreads, 0, as_cuda_stream(s)>>>(
        data_ptr<T>(dx), data_ptr<const T>(dy), data_ptr<const T>(x), data_ptr<const T>(w),
        data_ptr<const float>(rstd), dim);
    PLM_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace plm::cuda
