// plm::cuda::rmsnorm_forward/backward against the CPU oracle, f32 and bf16, on odd shapes (rows past one
// column-sum chunk, dims past one block), including dw accumulation (+=) and its determinism.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "core/kernels/backends.h"
#include "tests/core/kernels/cuda_test_util.h"
#include "tests/core/test_util.h"

namespace plm {
namespace {

using testing::cpu_output;
using testing::cuda_output;
using testing::kCudaTestDTypes;
using testing::matches_cpu;
using testing::random_pair;
using testing::shape_label;
using testing::Tolerance;
using testing::tolerance;

constexpr float kEps = 1e-5f;
const int64_t kShapes[][2] = {{1, 1}, {7, 33}, {33, 257}, {300, 1000}};

TEST(CudaRmsNormTest, ForwardMatchesCpu) {
  PLM_SKIP_WITHOUT_CUDA();
  for (const auto& [rows, dim] : kShapes) {
    for (const DType dtype : kCudaTestDTypes) {
      SCOPED_TRACE(shape_label("shape", dtype, rows, dim));
      auto x = random_pair({rows, dim}, 1, dtype, -2.0f, 2.0f);
      auto w = random_pair({dim}, 2, dtype);
      OwnedTensor y_expected = cpu_output({rows, dim}), rstd_expected = cpu_output({rows});
      cpu::rmsnorm_forward(y_expected, rstd_expected, x.host, w.host, kEps);
      OwnedTensor y = cuda_output({rows, dim}, dtype), rstd = cuda_output({rows}, DType::kF32);
      cuda::rmsnorm_forward(y, rstd, x.device, w.device, kEps);
      EXPECT_TRUE(matches_cpu(y, y_expected, dtype, shape_label("y", dtype, rows, dim)));
      // Statistics are f32 from identical inputs in both cases.
      EXPECT_TRUE(matches_cpu(rstd, rstd_expected, DType::kF32, shape_label("rstd", dtype, rows, dim)));
    }
  }
}

TEST(CudaRmsNormTest, BackwardMatchesCpu) {
  PLM_SKIP_WITHOUT_CUDA();
  for (const auto& [rows, dim] : kShapes) {
    for (const DType dtype : kCudaTestDTypes) {
      SCOPED_TRACE(shape_label("shape", dtype, rows, dim));
      auto x = random_pair({rows, dim}, 3, dtype, -2.0f, 2.0f);
      auto w = random_pair({dim}, 4, dtype);
      auto dy = random_pair({rows, dim}, 5, dtype);
      auto dw = random_pair({dim}, 6, dtype);  // accumulates onto these values
      OwnedTensor rstd_cpu = cpu_output({rows});
      OwnedTensor y_cpu = cpu_output({rows, dim});
      cpu::rmsnorm_forward(y_cpu, rstd_cpu, x.host, w.host, kEps);
      OwnedTensor dx_expected = cpu_output({rows, dim});
      cpu::rmsnorm_backward(dx_expected, dw.host, dy.host, x.host, w.host, rstd_cpu);

      OwnedTensor rstd = cuda_output({rows}, DType::kF32);
      OwnedTensor y = cuda_output({rows, dim}, dtype);
      cuda::rmsnorm_forward(y, rstd, x.device, w.device, kEps);
      OwnedTensor dx = cuda_output({rows, dim}, dtype);
      cuda::rmsnorm_backward(dx, dw.device, dy.device, x.device, w.device, rstd);
      EXPECT_TRUE(matches_cpu(dx, dx_expected, dtype, shape_label("dx", dtype, rows, dim)));
      // bf16 dw sums dy * bf16(x * rstd) (HF's rounding point; the oracle does not round): `rows` independent
      // rounding errors of up to 2^-8 relative, so the absolute tolerance grows like sqrt(rows).
      const Tolerance dw_tolerance = dtype == DType::kF32
                                         ? tolerance(dtype)
                                         : Tolerance{1e-2f * std::sqrt(static_cast<float>(rows)), 1e-2f};
      EXPECT_TRUE(matches_cpu(dw.device, dw.host, dw_tolerance, shape_label("dw", dtype, rows, dim)));
    }
  }
}

TEST(CudaRmsNormTest, WeightGradIsDeterministicAndOptional) {
  PLM_SKIP_WITHOUT_CUDA();
  const int64_t rows = 1000, dim = 77;
  auto x = random_pair({rows, dim}, 7, DType::kF32);
  auto w = random_pair({dim}, 8, DType::kF32);
  auto dy = random_pair({rows, dim}, 9, DType::kF32);
  OwnedTensor y = cuda_output({rows, dim}, DType::kF32), rstd = cuda_output({rows}, DType::kF32);
  cuda::rmsnorm_forward(y, rstd, x.device, w.device, kEps);
  OwnedTensor dx = cuda_output({rows, dim}, DType::kF32);
  OwnedTensor dw_first = cuda_output({dim}, DType::kF32), dw_second = cuda_output({dim}, DType::kF32);
  cuda::fill(dw_first, 0.0f);
  cuda::fill(dw_second, 0.0f);
  cuda::rmsnorm_backward(dx, dw_first, dy.device, x.device, w.device, rstd);
  cuda::rmsnorm_backward(dx, dw_second, dy.device, x.device, w.device, rstd);
  EXPECT_TRUE(testing::same_values(dw_first, dw_second));
  // A frozen weight passes no dw; dx is unchanged.
  OwnedTensor dx_frozen = cuda_output({rows, dim}, DType::kF32);
  cuda::rmsnorm_backward(dx_frozen, Tensor(), dy.device, x.device, w.device, rstd);
  EXPECT_TRUE(testing::same_values(dx_frozen, dx));
}

}  // namespace
}  // namespace plm
