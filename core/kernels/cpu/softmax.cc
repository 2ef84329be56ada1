// CPU softmax over the last dim, stable (the row max is subtracted before exp), row sums in double.
// y may alias x and dx may alias dy.
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/kernels/backends.h"
#include "core/kernels/cpu/checks.h"
#include "core/kernels/cpu/parallel.h"

namespace plm::cpu {

void softmax_forward(Tensor y, Tensor x, Stream) {
  check_tensor("softmax_forward", "x", x, DType::kF32);
  check_f32("softmax_forward", "y", y, x.shape());
  PLM_CHECK_GE(x.rank(), 1) << "softmax_forward: x " << x.describe();
  const Tensor x_rows = x.as_matrix();  // (N, D)
  const int64_t num_rows = x_rows.size(0), dim = x_rows.size(1);
  const float* x_data = x.data_as<float>();
  float* y_data = y.data_as<float>();
#pragma omp parallel for if (x.numel() >= kMinParallelWork)
  for (int64_t n = 0; n < num_rows; ++n) {
    const float* x_row = x_data + n * dim;
    float* y_row = y_data + n * dim;
    float row_max = -std::numeric_limits<float>::infinity();
    for (int64_t d = 0; d < dim; ++d) row_max = std::max(row_max, x_row[d]);
    double sum = 0.0;
    for (int64_t d = 0; d < dim; ++d) {
      y_row[d] = std::exp(x_row[d] - row_max);
      sum += y_row[d];
    }
    const float inv_sum = static_cast<float>(1.0 / sum);
    for (int64_t d = 0; d < dim; ++d) y_row[d] *= inv_sum;
  }
}

void softmax_backward(Tensor dx, Tensor dy, Tensor y, Stream) {
  check_tensor("softmax_backward", "y", y, DType::kF32);
  check_f32("softmax_backward", "dy", dy, y.shape());
  check_f32("softmax_backward", "dx", dx, y.shape());
  PLM_CHECK_GE(y.rank(), 1) << "softmax_backward: y " << y.describe();
  const Tensor y_rows = y.as_matrix();  // (N, D)
  const int64_t num_rows = y_rows.size(0), dim = y_rows.size(1);
  const float* y_data = y.data_as<float>();
  const float* dy_data = dy.data_as<float>();
  float* dx_data = dx.data_as<float>();
  // dx = y * (dy - sum(dy * y)).
#pragma omp parallel for if (y.numel() >= kMinParallelWork)
  for (int64_t n = 0; n < num_rows; ++n) {
    const float* y_row = y_data + n * dim;
    const float* dy_row = dy_data + n * dim;
    float* dx_row = dx_data + n * dim;
    double dot = 0.0;
    for (int64_t d = 0; d < dim; ++d) dot += static_cast<double>(dy_row[d]) * y_row[d];
    const float row_dot = static_cast<float>(dot);
    for (int64_t d = 0; d < dim; ++d) dx_row[d] = y_row[d] * (dy_row[d] - row_dot);
  }
}

}  // namespace plm::cpu
