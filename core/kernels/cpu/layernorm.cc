// CPU LayerNorm over the last dim: y = (x - mean) * rstd * w + b with the biased variance (two passes), on the
// vector rows of vector_kernels.h. Backward writes dx (=) and accumulates dw, db (+=, column sums in double) from
// the saved mean and rstd.
#include <cmath>

#include "core/kernels/backends.h"
#include "core/kernels/cpu/checks.h"
#include "core/kernels/cpu/parallel.h"
#include "core/kernels/cpu/vector_kernels.h"

namespace plm::cpu {

void layernorm_forward(Tensor y, Tensor mean, Tensor rstd, Tensor x, Tensor w, Tensor b, float eps, Stream) {
  check_tensor("layernorm_forward", "x", x, DType::kF32);
  check_rank("layernorm_forward", "x", x, 2);
  const int64_t num_rows = x.size(0), dim = x.size(1);
  check_f32("layernorm_forward", "y", y, x.shape());
  check_f32("layernorm_forward", "w", w, Shape{dim});
  check_f32("layernorm_forward", "b", b, Shape{dim});
  // Inference passes neither statistic; training passes both.
  PLM_CHECK_EQ(mean.defined(), rstd.defined()) << "layernorm_forward: give both mean and rstd or neither";
  if (rstd.defined()) {
    check_f32("layernorm_forward", "mean", mean, Shape{num_rows});
    check_f32("layernorm_forward", "rstd", rstd, Shape{num_rows});
  }
  const float* x_data = x.data_as<float>();
  const float* w_data = w.data_as<float>();
  const float* b_data = b.data_as<float>();
  float* y_data = y.data_as<float>();
  const VectorKernels& simd = vector_kernels(best_simd_isa());
#pragma omp parallel for if (x.numel() >= kMinParallelWork)
  for (int64_t n = 0; n < num_rows; ++n) {
    const float* x_row = x_data + n * dim;
    const float m = simd.sum(x_row, dim) / static_cast<float>(dim);
    const double variance = static_cast<double>(simd.sum_squares(x_row, dim, m)) / static_cast<double>(dim);
    const float r = static_cast<float>(1.0 / std::sqrt(variance + eps));
    simd.norm_affine(x_row, w_data, b_data, y_data + n * dim, dim, m, r);
    if (rstd.defined()) {
      mean.data_as<float>()[n] = m;
      rstd.data_as<float>()[n] = r;
    }
  }
}

void layernorm_backward(Tensor dx, Tensor dw, Tensor db, Tensor dy, Tensor x, Tensor w, Tensor mean,
                        Tensor rstd, Stream) {
  check_tensor("layernorm_backward", "x", x, DType::kF32);
  check_rank("layernorm_backward", "x", x, 2);
  const int64_t num_rows = x.size(0), dim = x.size(1);
  check_f32("layernorm_backward", "dx", dx, x.shape());
  check_f32("layernorm_backward", "dy", dy, x.shape());
  check_f32("layernorm_backward", "w", w, Shape{dim});
  if (dw.defined()) check_f32("layernorm_backward", "dw", dw, Shape{dim});
  if (db.defined()) check_f32("layernorm_backward", "db", db, Shape{dim});
  check_f32("layernorm_backward", "mean", mean, Shape{num_rows});
  check_f32("layernorm_backward", "rstd", rstd, Shape{num_rows});
  const float* x_data = x.data_as<float>();
  const float* w_data = w.data_as<float>();
  const float* dy_data = dy.data_as<float>();
  const float* mean_data = mean.data_as<float>();
  const float* rstd_data = rstd.data_as<float>();
  float* dx_data = dx.data_as<float>();

  // Parameter grads before dx, so that dx may overwrite dy in place.
  const auto x_hat = [&](int64_t n, int64_t d) { return (x_data[n * dim + d] - mean_data[n]) * rstd_data[n]; };
  if (dw.defined()) {
    add_column_sums(dw.data_as<float>(), num_rows, dim,
                    [&](int64_t n, int64_t d) { return dy_data[n * dim + d] * x_hat(n, d); });
  }
  if (db.defined()) {
    add_column_sums(db.data_as<float>(), num_rows, dim, [&](int64_t n, int64_t d) { return dy_data[n * dim + d]; });
  }
  // With g = w dy: dx = rstd * (g - mean(g) - x_hat mean(g x_hat)).
  const VectorKernels& simd = vector_kernels(best_simd_isa());
#pragma omp parallel for if (x.numel() >= kMinParallelWork)
  for (int64_t n = 0; n < num_rows; ++n) {
    const float* x_row = x_data + n * dim;
    const float* dy_row = dy_data + n * dim;
    float sum_g = 0.0f, sum_g_x_hat = 0.0f;
    simd.norm_grad_sums(x_row, w_data, dy_row, dim, mean_data[n], rstd_data[n], &sum_g, &sum_g_x_hat);
    simd.norm_backward(x_row, w_data, dy_row, dx_data + n * dim, dim, mean_data[n], rstd_data[n],
                       sum_g / static_cast<float>(dim), sum_g_x_hat / static_cast<float>(dim));
  }
}

}  // namespace plm::cpu
