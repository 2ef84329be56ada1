// plm::cuda::layernorm_forward/backward against the CPU oracle, f32 and bf16, on odd shapes (rows past one
// column-sum chunk, dims past one block), including dw/db accumulation (+=).
#include <gtest/gtest.h>

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

constexpr float kEps = 1e-5f;
const int64_t kShapes[][2] = {{1, 1}, {7, 33}, {33, 257}, {300, 1000}};

TEST(CudaLayerNormTest, ForwardMatchesCpu) {
  PLM_SKIP_WITHOUT_CUDA();
  for (const auto& [rows, dim] : kShapes) {
    for (const DType dtype : kCudaTestDTypes) {
      SCOPED_TRACE(shape_label("shape", dtype, rows, dim));
      // An offset mean, so the centring matters.
      auto x = random_pair({rows, dim}, 1, dtype, 1.0f, 3.0f);
      auto w = random_pair({dim}, 2, dtype);
      auto b = random_pair({dim}, 3, dtype);
      OwnedTensor y_expected = cpu_output({rows, dim});
      OwnedTensor mean_expected = cpu_output({rows}), rstd_expected = cpu_output({rows});
      cpu::layernorm_forward(y_expected, mean_expected, rstd_expected, x.host, w.host, b.host, kEps);
      OwnedTensor y = cuda_output({rows, dim}, dtype);
      OwnedTensor mean = cuda_output({rows}, DType::kF32), rstd = cuda_output({rows}, DType::kF32);
      cuda::layernorm_forward(y, mean, rstd, x.device, w.device, b.device, kEps);
      EXPECT_TRUE(matches_cpu(y, y_expected, dtype, shape_label("y", dtype, rows, dim)));
      EXPECT_TRUE(matches_cpu(mean, mean_expected, DType::kF32, shape_label("mean", dtype, rows, dim)));
      EXPECT_TRUE(matches_cpu(rstd, rstd_expected, DType::kF32, shape_label("rstd", dtype, rows, dim)));
    }
  }
}

TEST(CudaLayerNormTest, BackwardMatchesCpu) {
  PLM_SKIP_WITHOUT_CUDA();
  for (const auto& [rows, dim] : kShapes) {
    for (const DType dtype : kCudaTestDTypes) {
      SCOPED_TRACE(shape_label("shape", dtype, rows, dim));
      auto x = random_pair({rows, dim}, 4, dtype, -2.0f, 2.0f);
      auto w = random_pair({dim}, 5, dtype);
      auto b = random_pair({dim}, 6, dtype);
      auto dy = random_pair({rows, dim}, 7, dtype);
      auto dw = random_pair({dim}, 8, dtype);  // both accumulate onto these values
      auto db = random_pair({dim}, 9, dtype);
      OwnedTensor y_cpu = cpu_output({rows, dim}), mean_cpu = cpu_output({rows}), rstd_cpu = cpu_output({rows});
      cpu::layernorm_forward(y_cpu, mean_cpu, rstd_cpu, x.host, w.host, b.host, kEps);
      OwnedTensor dx_expected = cpu_output({rows, dim});
      cpu::layernorm_backward(dx_expected, dw.host, db.host, dy.host, x.host, w.host, mean_cpu, rstd_cpu);

      OwnedTensor y = cuda_output({rows, dim}, dtype);
      OwnedTensor mean = cuda_output({rows}, DType::kF32), rstd = cuda_output({rows}, DType::kF32);
      cuda::layernorm_forward(y, mean, rstd, x.device, w.device, b.device, kEps);
      OwnedTensor dx = cuda_output({rows, dim}, dtype);
      cuda::layernorm_backward(dx, dw.device, db.device, dy.device, x.device, w.device, mean, rstd);
      EXPECT_TRUE(matches_cpu(dx, dx_expected, dtype, shape_label("dx", dtype, rows, dim)));
      EXPECT_TRUE(matches_cpu(dw.device, dw.host, dtype, shape_label("dw", dtype, rows, dim)));
      EXPECT_TRUE(matches_cpu(db.device, db.host, dtype, shape_label("db", dtype, rows, dim)));
    }
  }
}

}  // namespace
}  // namespace plm
