// CPU RMSNorm over the last dim: y = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps). Row statistics sum
// in double. Backward writes dx (=) and accumulates dw (+=); rstd must be the one forward saved.
#include <cmath>

#include "core/kernels/backends.h"
#include "core/kernels/cpu/checks.h"
#include "core/kernels/cpu/parallel.h"

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
#pragma omp parallel for if (x.numel() >= kMinParallelWork)
  for (int64_t n = 0; n < num_rows; ++n) {
    const float* x_row = x_data + n * dim;
    float* y_row = y_data + n * dim;
    double sum_squares = 0.0;
    for (int64_t d = 0; d < dim; ++d) sum_squares += static_cast<double>(x_row[d]) * x_row[d];
    const float r = static_cast<float>(1.0 / std::sqrt(sum_squares / dim + eps));
    for (int64_t d = 0; d < dim; ++d) y_row[d] = x_row[d] * r * w_data[d];
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
  // dx = rstd * (w dy - x rstd^2 mean(w dy x)).
#pragma omp parallel for if (x.numel() >= kMinParallelWork)
  for (int64_t n = 0; n < num_rows; ++n) {
    const float* x_row = x_data + n * dim;
    const float* dy_row = dy_data + n * dim;
    float* dx_row = dx_data + n * dim;
    const float r = rstd_data[n];
    double dot = 0.0;
    for (int64_t d = 0; d < dim; ++d) dot += static_cast<double>(w_data[d]) * dy_row[d] * x_row[d];
    const float x_coeff = static_cast<float>(dot / dim) * r * r * r;
    for (int64_t d = 0; d < dim; ++d) dx_row[d] = r * w_data[d] * dy_row[d] - x_coeff * x_row[d];
  }
}

}  // namespace plm::cpu
