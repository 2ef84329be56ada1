// CPU LayerNorm over the last dim: y = (x - mean) * rstd * w + b with the biased variance, row statistics
// in double (two passes). Backward writes dx (=) and accumulates dw, db (+=) from the saved mean and rstd.
#include <cmath>

#include "core/kernels/backends.h"
#include "core/kernels/cpu/checks.h"
#include "core/kernels/cpu/parallel.h"

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
#pragma omp parallel for if (x.numel() >= kMinParallelWork)
  for (int64_t n = 0; n < num_rows; ++n) {
    const float* x_row = x_data + n * dim;
    float* y_row = y_data + n * dim;
    double sum = 0.0;
    for (int64_t d = 0; d < dim; ++d) sum += x_row[d];
    const double mu = sum / dim;
    double sum_squares = 0.0;
    for (int64_t d = 0; d < dim; ++d) sum_squares += (x_row[d] - mu) * (x_row[d] - mu);
    const float m = static_cast<float>(mu);
    const float r = static_cast<float>(1.0 / std::sqrt(sum_squares / dim + eps));
    for (int64_t d = 0; d < dim; ++d) y_row[d] = (x_row[d] - m) * r * w_data[d] + b_data[d];
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
#pragma omp parallel for if (x.numel() >= kMinParallelWork)
  for (int64_t n = 0; n < num_rows; ++n) {
    const float* dy_row = dy_data + n * dim;
    double sum_g = 0.0, sum_g_x_hat = 0.0;
    for (int64_t d = 0; d < dim; ++d) {
      const double g = static_cast<double>(w_data[d]) * dy_row[d];
      sum_g += g;
      sum_g_x_hat += g * x_hat(n, d);
    }
    const float mean_g = static_cast<float>(sum_g / dim);
    const float mean_g_x_hat = static_cast<float>(sum_g_x_hat / dim);
    for (int64_t d = 0; d < dim; ++d) {
      dx_data[n * dim + d] = rstd_data[n] * (w_data[d] * dy_row[d] - mean_g - x_hat(n, d) * mean_g_x_hat);
    }
  }
}

}  // namespace plm::cpu
