// CPU text RoPE (half split) against a double reference, in place, and its backward against finite
// differences and the analytic inverse rotation.
#include <gtest/gtest.h>

#include <cmath>

#include "core/kernels/backends.h"
#include "core/kernels/rope_tables.h"
#include "tests/core/kernels/reference_check.h"
#include "tests/core/test_util.h"

namespace plm {
namespace {

using testing::all_close;
using testing::random_ids;
using testing::random_tensor;
using testing::tensor_from;

// y = rotate(x, sign * angle) in double; the angle is the contract's fp32 product float(pos) * inv_freq.
std::vector<double> rope_reference(Tensor x, Tensor positions, Tensor inv_freq, double sign) {
  const int64_t n_tokens = x.size(0), heads = x.size(1), dim = x.size(2), half = dim / 2;
  const float* in = x.data_as<float>();
  std::vector<double> y(static_cast<size_t>(x.numel()));
  for (int64_t n = 0; n < n_tokens; ++n) {
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t i = 0; i < half; ++i) {
        const float angle = static_cast<float>(positions.data_as<int32_t>()[n]) * inv_freq.data_as<float>()[i];
        const double c = std::cos(static_cast<double>(angle)), s = sign * std::sin(static_cast<double>(angle));
        const int64_t base = (n * heads + h) * dim;
        y[base + i] = in[base + i] * c - in[base + i + half] * s;
        y[base + i + half] = in[base + i + half] * c + in[base + i] * s;
      }
    }
  }
  return y;
}

OwnedTensor inv_freq_tensor(int head_dim) {
  const std::vector<float> f = rope_inv_freq(head_dim, 500000.0, Llama3RopeScaling{32.0, 1.0, 4.0, 8192});
  return tensor_from({head_dim / 2}, f);
}

TEST(CpuRope, ForwardMatchesDoubleReference) {
  for (const auto& [num_tokens, heads, dim] : {std::tuple{1, 1, 2}, std::tuple{5, 3, 8}, std::tuple{17, 2, 64}}) {
    OwnedTensor x = random_tensor({num_tokens, heads, dim}, 1 + num_tokens);
    OwnedTensor positions = random_ids({num_tokens}, 2 + num_tokens, 0, 5000);
    OwnedTensor inv_freq = inv_freq_tensor(dim);
    OwnedTensor y({num_tokens, heads, dim}, DType::kF32);
    cpu::rope_forward(y, x, positions, inv_freq);
    EXPECT_TRUE(testing::close_to_reference(y, rope_reference(x, positions, inv_freq, 1.0), 1e-6, 0.0,
                                            "forward_dim" + std::to_string(dim)));
  }
}

TEST(CpuRope, PositionZeroIsIdentityAndInPlaceMatches) {
  OwnedTensor x = random_tensor({4, 2, 6}, 7);
  OwnedTensor positions = tensor_from({4}, std::vector<int32_t>{0, 3, 100, 70000});
  OwnedTensor inv_freq = inv_freq_tensor(6);
  OwnedTensor y({4, 2, 6}, DType::kF32);
  cpu::rope_forward(y, x, positions, inv_freq);
  for (int i = 0; i < 12; ++i) EXPECT_EQ(y.data_as<float>()[i], x.data_as<float>()[i]);
  cpu::rope_forward(x, x, positions, inv_freq);
  EXPECT_EQ(testing::max_abs_diff(x, y), 0.0f);
}

TEST(CpuRope, BackwardIsTheInverseRotationAndMatchesFiniteDifferences) {
  OwnedTensor x = random_tensor({5, 2, 8}, 11);
  OwnedTensor positions = random_ids({5}, 12, 0, 300);
  OwnedTensor inv_freq = inv_freq_tensor(8);
  OwnedTensor probe = random_tensor({5, 2, 8}, 13);
  OwnedTensor dx({5, 2, 8}, DType::kF32);
  cpu::rope_backward(dx, probe, positions, inv_freq);
  EXPECT_TRUE(testing::close_to_reference(dx, rope_reference(probe, positions, inv_freq, -1.0), 1e-6, 0.0, "backward"));

  OwnedTensor y({5, 2, 8}, DType::kF32);
  const std::vector<double> fd = testing::finite_difference(
      x,
      [&] {
        cpu::rope_forward(y, x, positions, inv_freq);
        return testing::dot(y, probe);
      },
      1e-2f);
  EXPECT_TRUE(testing::close_to_reference(dx, fd, 2e-4, 0.0, "backward_vs_fd"));

  // Backward in place undoes the forward.
  cpu::rope_forward(y, x, positions, inv_freq);
  cpu::rope_backward(y, y, positions, inv_freq);
  EXPECT_TRUE(all_close(y, x, 2e-6));
}

}  // namespace
}  // namespace plm
