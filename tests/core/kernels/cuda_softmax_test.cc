// plm::cuda::softmax_forward/backward against the CPU oracle, f32 and bf16, on odd row lengths (one
// element, less than a warp, more than a block).
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

const int64_t kShapes[][2] = {{1, 1}, {7, 5}, {33, 257}, {3, 1000}};

TEST(CudaSoftmaxTest, ForwardAndBackwardMatchCpu) {
  PLM_SKIP_WITHOUT_CUDA();
  for (const auto& [rows, dim] : kShapes) {
    const Shape shape{rows, dim};
    for (const DType dtype : kCudaTestDTypes) {
      const std::string label = dtype_label(std::to_string(rows) + "x" + std::to_string(dim), dtype);
      SCOPED_TRACE(label);
      auto x = random_pair(shape, 1, dtype, -8.0f, 8.0f);
      auto dy = random_pair(shape, 2, dtype);
      OwnedTensor y_expected = cpu_output(shape), dx_expected = cpu_output(shape);
      cpu::softmax_forward(y_expected, x.host);
      OwnedTensor y = cuda_output(shape, dtype);
      cuda::softmax_forward(y, x.device);
      EXPECT_TRUE(matches_cpu(y, y_expected, dtype, "y_" + label));
      // Both backwards take the CUDA forward's y (rounded to dtype), so they see the same input.
      OwnedTensor y_host = testing::widen_to_f32(y);
      cpu::softmax_backward(dx_expected, dy.host, y_host);
      OwnedTensor dx = cuda_output(shape, dtype);
      cuda::softmax_backward(dx, dy.device, y);
      EXPECT_TRUE(matches_cpu(dx, dx_expected, dtype, "dx_" + label));
    }
  }
}

}  // namespace
}  // namespace plm
