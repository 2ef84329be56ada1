// plm::cuda text RoPE (half split) and vision RoPE (interleaved pairs, CLS prefix) against the CPU oracle,
// f32 and bf16, forward and backward; in place, and the backward undoing the forward.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

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
using testing::Tolerance;
using testing::tolerance;

// theta^(-2i/Dh) for i < Dh/2 (the default Llama frequencies; values only need to be plausible).
OwnedTensor inv_freq_table(int64_t head_dim, double theta) {
  std::vector<float> values(static_cast<size_t>(head_dim / 2));
  for (size_t i = 0; i < values.size(); ++i) {
    values[i] = static_cast<float>(std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim)));
  }
  return testing::tensor_from({head_dim / 2}, values);
}

// bf16 text RoPE rounds at HF's five points (cos, sin, both products, the sum; each up to 2^-8 relative).
Tolerance text_rope_tolerance(DType dtype) {
  return dtype == DType::kF32 ? tolerance(dtype) : Tolerance{3e-2f, 1e-2f};
}

const int64_t kTextShapes[][3] = {{7, 3, 10}, {5, 2, 128}};  // (N, H, Dh)

TEST(CudaRopeTest, TextMatchesCpu) {
  PLM_SKIP_WITHOUT_CUDA();
  for (const auto& [num_tokens, num_heads, head_dim] : kTextShapes) {
    OwnedTensor positions = testing::random_ids({num_tokens}, 1, 0, 4096);
    OwnedTensor positions_cuda = testing::to_cuda(positions);
    OwnedTensor inv_freq = inv_freq_table(head_dim, 500000.0);
    OwnedTensor inv_freq_cuda = testing::to_cuda(inv_freq);
    const Shape shape{num_tokens, num_heads, head_dim};
    for (const DType dtype : kCudaTestDTypes) {
      const std::string label = dtype_label("dh" + std::to_string(head_dim), dtype);
      SCOPED_TRACE(label);
      auto x = random_pair(shape, 2, dtype);
      OwnedTensor y_expected = cpu_output(shape), dx_expected = cpu_output(shape);
      cpu::rope_forward(y_expected, x.host, positions, inv_freq);
      cpu::rope_backward(dx_expected, x.host, positions, inv_freq);
      OwnedTensor y = cuda_output(shape, dtype), dx = cuda_output(shape, dtype);
      cuda::rope_forward(y, x.device, positions_cuda, inv_freq_cuda);
      cuda::rope_backward(dx, x.device, positions_cuda, inv_freq_cuda);
      EXPECT_TRUE(matches_cpu(y, y_expected, text_rope_tolerance(dtype), "y_" + label));
      EXPECT_TRUE(matches_cpu(dx, dx_expected, text_rope_tolerance(dtype), "dx_" + label));
    }
  }
}

TEST(CudaRopeTest, TextInPlaceAndBackwardUndoesForward) {
  PLM_SKIP_WITHOUT_CUDA();
  const Shape shape{9, 4, 64};
  OwnedTensor positions = testing::to_cuda(testing::random_ids({9}, 3, 0, 2048));
  OwnedTensor inv_freq = testing::to_cuda(inv_freq_table(64, 10000.0));
  auto x = random_pair(shape, 4, DType::kF32);
  OwnedTensor y = cuda_output(shape, DType::kF32);
  cuda::rope_forward(y, x.device, positions, inv_freq);
  OwnedTensor in_place = testing::to_cuda(x.host);
  cuda::rope_forward(in_place, in_place, positions, inv_freq);
  EXPECT_TRUE(testing::same_values(in_place, y));
  cuda::rope_backward(in_place, in_place, positions, inv_freq);
  EXPECT_TRUE(testing::all_close(in_place, x.host, 1e-6f, 1e-5f));
}

TEST(CudaRopeTest, VisionMatchesCpu) {
  PLM_SKIP_WITHOUT_CUDA();
  const int64_t batch = 2, seq = 6, num_heads = 3, head_dim = 12;
  const Shape shape{batch, seq, num_heads, head_dim};
  for (const int num_prefix : {0, 1}) {
    // cos and sin of arbitrary angles, like vision_rope_table()'s.
    OwnedTensor angles = testing::random_tensor({seq - num_prefix, head_dim / 2}, 5, -20.0f, 20.0f);
    std::vector<float> cos_values, sin_values;
    for (const float a : testing::to_vector(angles)) {
      cos_values.push_back(std::cos(a));
      sin_values.push_back(std::sin(a));
    }
    OwnedTensor cos = testing::tensor_from(angles.shape(), cos_values);
    OwnedTensor sin = testing::tensor_from(angles.shape(), sin_values);
    OwnedTensor cos_cuda = testing::to_cuda(cos), sin_cuda = testing::to_cuda(sin);
    for (const DType dtype : kCudaTestDTypes) {
      const std::string label = dtype_label("prefix" + std::to_string(num_prefix), dtype);
      SCOPED_TRACE(label);
      auto x = random_pair(shape, 6, dtype);
      OwnedTensor y_expected = cpu_output(shape), dx_expected = cpu_output(shape);
      cpu::vision_rope_forward(y_expected, x.host, cos, sin, num_prefix);
      cpu::vision_rope_backward(dx_expected, x.host, cos, sin, num_prefix);
      OwnedTensor y = cuda_output(shape, dtype), dx = cuda_output(shape, dtype);
      cuda::vision_rope_forward(y, x.device, cos_cuda, sin_cuda, num_prefix);
      cuda::vision_rope_backward(dx, x.device, cos_cuda, sin_cuda, num_prefix);
      EXPECT_TRUE(matches_cpu(y, y_expected, dtype, "y_" + label));
      EXPECT_TRUE(matches_cpu(dx, dx_expected, dtype, "dx_" + label));
      if (num_prefix > 0) {  // the CLS token of every image passes through exactly
        for (int64_t b = 0; b < batch; ++b) {
          const Tensor cls_out = y.view().select(0, b).select(0, 0);
          const Tensor cls_in = x.device.view().select(0, b).select(0, 0);
          EXPECT_TRUE(testing::same_values(cls_out, cls_in));
        }
      }
    }
  }
}

}  // namespace
}  // namespace plm
