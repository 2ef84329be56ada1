// LayerNorm on CUDA: one block per row, two-pass f32 statistics (mean, then biased variance), output
// rounded once (F.layer_norm, spec/plm_spec.md §6). dw and db are deterministic (column_sum) and each
// optional: undefined when the parameter is frozen.
#include "core/kernels/backends.h"
#include "core/kernels/cuda/column_sum.cuh"
#include "core/kernels/cuda/cuda_common.cuh"

namespace plm::cuda {
namespace {

// y, x: (N, D); w, b: (D); mean, rstd: (N) or nullptr. Grid N, block kThreads.
template <typename T>
__global__ void layernorm_forward_kernel(T* y, float* mean_out, float* rstd_out, const T* x, const T* w,
                                         const T* b, float eps, int64_t dim) {
  const int64_t row = blockIdx.x;
  const T* x_row = x + row * dim;
  T* y_row = y + row * dim;
  float sum = 0.0f;
  for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) sum += to_float(x_row[d]);
  const float mean = block_sum(sum) / static_cast<float>(dim);
  float sum_squares = 0.0f;
  for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) {
    const float centered = to_float(x_row[d]) - mean;
    sum_squares += centered * centered;
  }
  const float rstd = rsqrtf(block_sum(sum_squares) / static_cast<float>(dim) + eps);
  for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) {
    y_row[d] = from_float<T>((to_float(x_row[d]) - mean) * rstd * to_float(w[d]) + to_float(b[d]));
  }
  if (threadIdx.x == 0) {
    if (mean_out != nullptr) mean_out[row] = mean;
    if (rstd_out != nullptr) rstd_out[row] = rstd;
  }
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * w, xhat = (x - mean) * rstd. In place
// (dx == dy or x) is safe: each thread reads its elements before the reductions and writes only those.
template <typename T>
__global__ void layernorm_backward_kernel(T* dx, const T* dy, const T* x, const T* w, const float* mean,
                                          const float* rstd, int64_t dim) {
  const int64_t row = blockIdx.x;
  const int64_t offset = row * dim;
  const float mu = mean[row];
  const float r = rstd[row];
  float g_sum = 0.0f;
  float g_dot_xhat = 0.0f;
  for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) {
    const float g = to_float(dy[offset + d]) * to_float(w[d]);
    g_sum += g;
    g_dot_xhat += g * ((to_float(x[offset + d]) - mu) * r);
  }
  const float mean_g = block_sum(g_sum) / static_cast<float>(dim);
  const float mean_g_xhat = block_sum(g_dot_xhat) / static_cast<float>(dim);
  for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) {
    const float xhat = (to_float(x[offset + d]) - mu) * r;
    const float g = to_float(dy[offset + d]) * to_float(w[d]);
    dx[offset + d] = from_float<T>(r * (g - mean_g - xhat * mean_g_xhat));
  }
}

// dw[d] = sum_n dy[n, d] * xhat[n, d].
template <typename T>
struct LayerNormWeightGrad {
  const T* dy;
  const T* x;
  const float* mean;
  const float* rstd;
  int64_t dim;
  __device__ float operator()(int64_t row, int64_t col) const {
    const int64_t i = row * dim + col;
    return to_float(dy[i]) * ((to_float(x[i]) - mean[row]) * rstd[row]);
  }
};

// db[d] = sum_n dy[n, d].
template <typename T>
struct LayerNormBiasGrad {
  const T* dy;
  int64_t dim;
  __device__ float operator()(int64_t row, int64_t col) const { return to_float(dy[row * dim + col]); }
};

// y, x: (..., D); w, b (D) (b may be undefined in the backward); mean, rstd: one f32 per row.
void check_layernorm_args(const char* op, const Tensor& y, const Tensor& mean, const Tensor& rstd,
                          const Tensor& x, const Tensor& w, const Tensor& b) {
  check_cuda_tensors(op, {y, mean, rstd, x, w, b});
  check_same_shape(op, y, x);
  check_same_dtype(op, y, x);
  check_same_dtype(op, w, x);
  PLM_CHECK(x.rank() >= 1 && w.rank() == 1 && w.size(0) == x.size(-1))
      << op << ": wants x (..., D) and w (D); got " << x.describe() << ", " << w.describe();
  if (b.defined()) {
    check_same_shape(op, b, w);
    check_same_dtype(op, b, w);
  }
  for (const Tensor& stat : {mean, rstd}) {
    if (!stat.defined()) continue;
    check_dtype(op, stat, DType::kF32);
    PLM_CHECK(stat.numel() * x.size(-1) == x.numel())
        << op << ": statistic " << stat.describe() << " does not match the rows of " << x.describe();
  }
}

}  // namespace

void layernorm_forward(Tensor y, Tensor mean, Tensor rstd, Tensor x, Tensor w, Tensor b, float eps, Stream s) {
  const char* op = "layernorm_forward";
  PLM_CHECK(b.defined()) << op << ": needs the bias b";
  check_layernorm_args(op, y, mean, rstd, x, w, b);
  const int64_t num_rows = num_rows_of(x);
  if (num_rows == 0) return;
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    layernorm_forward_kernel<<<row_grid(op, num_rows), kThreads, 0, as_cuda_stream(s)>>>(
        data_ptr<T>(y), data_ptr<float>(mean), data_ptr<float>(rstd), data_ptr<const T>(x), data_ptr<const T>(w),
        data_ptr<const T>(b), eps, x.size(-1));
    PLM_CUDA_CHECK_LAUNCH();
  });
}

void layernorm_backward(Tensor dx, Tensor dw, Tensor db, Tensor dy, Tensor x, Tensor w, Tensor mean, Tensor rstd,
                        Stream s) {
  const char* op = "layernorm_backward";
  PLM_CHECK(mean.defined() && rstd.defined()) << op << ": needs the mean and rstd saved by the forward";
  check_layernorm_args(op, dx, mean, rstd, x, w, Tensor());
  check_cuda_tensors(op, {dw, db, dy});
  check_same_shape(op, dy, x);
  check_same_dtype(op, dy, x);
  for (const Tensor& grad : {dw, db}) {
    if (!grad.defined()) continue;
    check_same_shape(op, grad, w);
    check_same_dtype(op, grad, w);
  }
  const int64_t dim = x.size(-1);
  const int64_t num_rows = num_rows_of(x);
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    // Parameter grads first: dx may overwrite dy or x in place.
    if (dw.defined()) {
      column_sum(op, data_ptr<T>(dw),
                 LayerNormWeightGrad<T>{data_ptr<const T>(dy), data_ptr<const T>(x), data_ptr<const float>(mean),
                                        data_ptr<const float>(rstd), dim},
                 num_rows, dim, /*accumulate=*/true, dw.device(), s);
    }
    if (db.defined()) {
      column_sum(op, data_ptr<T>(db), LayerNormBiasGrad<T>{data_ptr<const T>(dy), dim}, num_rows, dim,
                 /*accumulate=*/true, db.device(), s);
    }
    if (num_rows == 0) return;
    layernorm_backward_kernel<<<row_grid(op, num_rows), kThreads, 0, as_cuda_stream(s)>>>(
        data_ptr<T>(dx), data_ptr<const T>(dy), data_ptr<const T>(x), data_ptr<const T>(w),
        data_ptr<const float>(mean), data_ptr<const float>(rstd), dim);
    PLM_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace plm::cuda
