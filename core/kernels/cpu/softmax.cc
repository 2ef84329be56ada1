// CPU softmax over the last dim, stable (the row max is subtracted before exp), on the vector rows of
// vector_kernels.h. y may alias x and dx may alias dy.
#include "core/kernels/backends.h"
#include "core/kernels/cpu/checks.h"
#include "core/kernels/cpu/parallel.h"
#include "core/kernels/cpu/vector_kernels.h"

namespace plm::cpu {

void softmax_forward(Tensor y, Tensor x, Stream) {
  check_tensor("softmax_forward", "x", x, DType::kF32);
  check_f32("softmax_forward", "y", y, x.shape());
  PLM_CHECK_GE(x.rank(), 1) << "softmax_forward: x " << x.describe();
  const Tensor x_rows = x.as_matrix();  // (N, D)
  const int64_t num_rows = x_rows.size(0), dim = x_rows.size(1);
  const float* x_data = x.data_as<float>();
  float* y_data = y.data_as<float>();
  const VectorKernels& simd = vector_kernels(best_simd_isa());
#pragma omp parallel for if (x.numel() >= kMinParallelWork)
  for (int64_t n = 0; n < num_rows; ++n) {
    const float* x_row = x_data + n * dim;
    const float row_max = simd.row_max(x_row, dim);
    const float sum = simd.sum_exp(x_row, dim, row_max);
    simd.scaled_exp(x_row, y_data + n * dim, dim, row_max, 1.0f / sum);
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
  const VectorKernels& simd = vector_kernels(best_simd_isa());
  // dx = y * (dy - sum(dy * y)).
#pragma omp parallel for if (y.numel() >= kMinParallelWork)
  for (int64_t n = 0; n < num_rows; ++n) {
    const float* y_row = y_data + n * dim;
    const float* dy_row = dy_data + n * dim;
    simd.softmax_grad(y_row, dy_row, simd.dot(dy_row, y_row, dim), dx_data + n * dim, dim);
  }
}

}  // namespace plm::cpu
