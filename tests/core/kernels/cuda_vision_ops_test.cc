// plm::cuda adaptive average pooling (disjoint blocks, overlapping windows, identity) and im2col patches
// against the CPU oracle, f32 and bf16.
#include <gtest/gtest.h>

#include <string>

#include "core/kernels/backends.h"
#include "tests/core/kernels/cuda_test_util.h"
#include "tests/core/test_util.h"

namespace plm {
namespace {

using testing::cpu_output;
using testing::cuda_output;
using testing::dtype_label;
using testing::kCudaTestDTypes;
using testing::matches_cpu;
using testing::random_pair;

// (grid, out_grid): 2x2 blocks, overlapping windows [0,3) [2,5) [4,7), no pooling, upsampling windows.
const int kPoolGrids[][2] = {{4, 2}, {7, 3}, {5, 5}, {3, 4}};

TEST(CudaVisionOpsTest, AdaptiveAvgPoolMatchesCpu) {
  PLM_SKIP_WITHOUT_CUDA();
  const int64_t batch = 2, channels = 33;
  for (const auto& [grid, out_grid] : kPoolGrids) {
    const Shape in_shape{batch, int64_t{grid} * grid, channels};
    const Shape out_shape{batch, int64_t{out_grid} * out_grid, channels};
    for (const DType dtype : kCudaTestDTypes) {
      const std::string label = dtype_label(std::to_string(grid) + "to" + std::to_string(out_grid), dtype);
      SCOPED_TRACE(label);
      auto x = random_pair(in_shape, 1, dtype);
      auto dout = random_pair(out_shape, 2, dtype);
      OwnedTensor out_expected = cpu_output(out_shape), dx_expected = cpu_output(in_shape);
      cpu::adaptive_avg_pool2d_forward(out_expected, x.host, grid, out_grid);
      cpu::adaptive_avg_pool2d_backward(dx_expected, dout.host, grid, out_grid);
      OwnedTensor out = cuda_output(out_shape, dtype), dx = cuda_output(in_shape, dtype);
      cuda::adaptive_avg_pool2d_forward(out, x.device, grid, out_grid);
      cuda::adaptive_avg_pool2d_backward(dx, dout.device, grid, out_grid);
      EXPECT_TRUE(matches_cpu(out, out_expected, dtype, "out_" + label));
      EXPECT_TRUE(matches_cpu(dx, dx_expected, dtype, "dx_" + label));
    }
  }
}

TEST(CudaVisionOpsTest, Im2colMatchesCpu) {
  PLM_SKIP_WITHOUT_CUDA();
  const int64_t batch = 2, channels = 3, height = 6, width = 9, patch = 3;
  const Shape patches_shape{batch * (height / patch) * (width / patch), channels * patch * patch};
  for (const DType dtype : kCudaTestDTypes) {
    SCOPED_TRACE(dtype_name(dtype));
    auto images = random_pair({batch, channels, height, width}, 3, dtype);
    OwnedTensor expected = cpu_output(patches_shape);
    cpu::im2col_patches(expected, images.host, patch);
    OwnedTensor patches = cuda_output(patches_shape, dtype);
    cuda::im2col_patches(patches, images.device, patch);
    EXPECT_EQ(testing::max_abs_diff(patches, expected), 0.0f);  // a permutation: exact
  }
}

}  // namespace
}  // namespace plm
