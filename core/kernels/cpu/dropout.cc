// CPU inverted dropout with counter-based masks (core/kernels/counter_random.h): the oracle the CUDA kernel
// matches bit for bit (the mask is integer arithmetic; the kept values are x * (1 / (1 - p)) in f32).
#include "core/kernels/backends.h"
#include "core/kernels/counter_random.h"
#include "core/kernels/cpu/checks.h"
#include "core/kernels/cpu/parallel.h"

namespace plm::cpu {

void dropout_forward(Tensor y, Tensor x, Tensor row_keys, uint64_t salt, float p, Stream) {
  check_tensor("dropout_forward", "x", x, DType::kF32);
  check_rank("dropout_forward", "x", x, 2);
  const int64_t num_rows = x.size(0), dim = x.size(1);
  check_f32("dropout_forward", "y", y, x.shape());
  check_tensor("dropout_forward", "row_keys", row_keys, DType::kI64);
  check_shape("dropout_forward", "row_keys", row_keys, Shape{num_rows});
  PLM_CHECK(p >= 0.0f && p < 1.0f) << "dropout_forward: probability " << p << " outside [0, 1)";
  const float keep_scale = 1.0f / (1.0f - p);
  const float* x_data = x.data_as<float>();
  const int64_t* keys = row_keys.data_as<int64_t>();
  float* y_data = y.data_as<float>();
#pragma omp parallel for if (x.numel() >= kMinParallelWork)
  for (int64_t n = 0; n < num_rows; ++n) {
    const uint64_t key = static_cast<uint64_t>(keys[n]);
    for (int64_t d = 0; d < dim; ++d) {
      y_data[n * dim + d] = dropout_keeps(key, salt, d, p) ? x_data[n * dim + d] * keep_scale : 0.0f;
    }
  }
}

}  // namespace plm::cpu
