// CPU RMSNorm over the last dim: y = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps), on the vector rows of
// vector_kernels.h (LayerNorm's with mean 0 and no bias). Backward writes dx (=) and accumulates dw (+=, column
// sums in double); rstd must be the one forward saved.
#include <cmath>

#include "core/kernels/backends.h"
#include "core/kernels/cpu/checks.h"
#include "core/kernels/cpu/parallel.h"
#include "core/kernels/cpu/vector_kernels.h"

namespace plm::cpu {

void rmsnorm_forward(Tensor y, Tensor rstd, Tensor x, Tensor w, float eps, Stream) {
  check_tensor("rmsnorm_forward", "x", x, DType::kF32);
  check_rank("rmsnorm_forward", "x", x, 2);
  const int64_t num_rows = x.size(0), dim = x.size(1);
  check_f32("rmsnorm_forward", "y", y, x.shape());
  check_f32("rmsnorm_forward", "w", w, Shape{dim});
  float* rstd_data = nullptr;  // inference passes no rstd
  if (rstd.defined()) {
    check_f32("rmsnorm_forward", "rstd", rstd, Shape{num_rows});
    rstd_data = rstd.data_as<float>();
  }
  const float* x_data = x.data_as<float>();
  const float* w_data = w.data_as<float>();
  float* y_data = y.data_as<float>();
  const VectorKernels& simd = vector_kernels(best_simd_isa());
#pragma omp parallel for if (x.numel() >= kMinParallelWork)
  for (int64_t n = 0; n < num_rows; ++n) {
    const float* x_row = x_data + n * dim;
    const double mean_square = static_cast<double>(simd.sum_squares(x_row, dim, 0.0f)) / static_cast<double>(dim);
    const float r = static_cast<float>(1.0 / std::sqrt(mean_square + eps));
    simd.norm_affine(x_row, w_data, nullptr, y_data + n * dim, dim, 0.0f, r);
    if (rstd_data != nullptr) rstd_data[n] = r;
  }
}

void rmsnorm_backward(Tensor dx, Tensor dw, Tensor dy, Tensor x, Tensor w, Tensor rstd, Stream) {
  check_tensor("rmsnorm_backward", "x", x, DType::kF32);
  check_rank("rmsnorm_backward", "x", x, 2);
  const int64_t num_rows = x.size(0), dim = x.size(1);
  check_f32("rmsnorm_backward", "dx", dx, x.shape());
  check_f32("rmsnorm_backward", "dy", dy, x.shape());
  check_f32("rmsnorm_backward", "w", w, Shape{dim});
  if (dw.defined()) check_f32("rmsnorm_backward", "dw", dw, Shape{dim});
  check_f32("rmsnorm_backward", "rstd", rstd, Shape{num_rows});
  const float* x_data = x.data_as<float>();
  const float* w_data = w.data_as<float>();
  const float* dy_data = dy.data_as<float>();
  const float* rstd_data = rstd.data_as<float>();
  float* dx_data = dx.data_as<float>();

  // dw before dx, so that dx may overwrite dy in place.
  if (dw.defined()) {
    add_column_sums(dw.data_as<float>(), num_rows, dim, [&](int64_t n, int64_t d) {
      return dy_data[n * dim + d] * x_data[n * dim + d] * rstd_data[n];
    });
  }
  // With x_hat = x rstd and g = w dy: dx = rstd * (g - x_hat mean(g x_hat)).
  const VectorKernels& simd = vector_kernels(best_simd_isa());
#pragma omp parallel for if (x.numel() >= kMinParallelWork)
  for (int64_t n = 0; n < num_rows; ++n) {
    const float* x_row = x_data + n * dim;
    const float* dy_row = dy_data + n * dim;
    float sum_g = 0.0f, sum_g_x_hat = 0.0f;
    simd.norm_grad_sums(x_row, w_data, dy_row, dim, 0.0f, rstd_data[n], &sum_g, &sum_g_x_hat);
    simd.norm_backward(x_row, w_data, dy_row, dx_data + n * dim, dim, 0.0f, rstd_data[n], 0.0f,
                       sum_g_x_hat / static_cast<float>(dim));
  }
}

}  // namespace plm::cpu
