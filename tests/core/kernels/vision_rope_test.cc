// CPU vision RoPE (interleaved pairs, CLS copied unrotated) against a double reference, in place, and
// its backward against finite differences and the analytic inverse rotation.
#include <gtest/gtest.h>

#include <cmath>

#include "core/kernels/backends.h"
#include "core/kernels/rope_tables.h"
#include "tests/core/kernels/reference_check.h"
#include "tests/core/test_util.h"

namespace plm {
namespace {

using testing::random_tensor;
using testing::tensor_from;

struct Table {
  OwnedTensor cos, sin;  // (grid * grid, Dh / 2)
};

Table make_table(int grid, int head_dim) {
  const VisionRopeTable t = vision_rope_table(grid, head_dim, 10000.0, 1.0f, grid);
  const Shape shape{t.num_patches, t.half_dim};
  return {tensor_from(shape, t.cos), tensor_from(shape, t.sin)};
}

// x (B, S, H, Dh) rotated by sign * angle in double; tokens before num_prefix copied.
std::vector<double> vision_rope_reference(Tensor x, const Table& table, int num_prefix, double sign) {
  const int64_t batch = x.size(0), seq = x.size(1), heads = x.size(2), dim = x.size(3);
  const float* in = x.data_as<float>();
  std::vector<double> y(in, in + x.numel());
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t t = num_prefix; t < seq; ++t) {
      for (int64_t h = 0; h < heads; ++h) {
        for (int64_t p = 0; p < dim / 2; ++p) {
          const int64_t row = (t - num_prefix) * (dim / 2) + p;
          const double c = table.cos.data_as<float>()[row], s = sign * table.sin.data_as<float>()[row];
          const int64_t even = ((b * seq + t) * heads + h) * dim + 2 * p;
          y[even] = in[even] * c - in[even + 1] * s;
          y[even + 1] = in[even + 1] * c + in[even] * s;
        }
      }
    }
  }
  return y;
}

TEST(CpuVisionRope, ForwardMatchesReferenceWithAndWithoutCls) {
  for (const int num_prefix : {0, 1}) {
    const Table table = make_table(3, 8);
    const int64_t seq = 9 + num_prefix;
    OwnedTensor x = random_tensor({2, seq, 3, 8}, 21 + num_prefix);
    OwnedTensor y({2, seq, 3, 8}, DType::kF32);
    cpu::vision_rope_forward(y, x, table.cos, table.sin, num_prefix);
    EXPECT_TRUE(testing::close_to_reference(y, vision_rope_reference(x, table, num_prefix, 1.0), 1e-6, 0.0,
                                            "forward_prefix" + std::to_string(num_prefix)));
    if (num_prefix == 1) {
      for (int64_t b = 0; b < 2; ++b) {  // CLS copied bit for bit
        const Tensor cls_in = x.view().select(0, b).select(0, 0), cls_out = y.view().select(0, b).select(0, 0);
        EXPECT_EQ(testing::max_abs_diff(cls_in, cls_out), 0.0f);
      }
    }
    cpu::vision_rope_forward(x, x, table.cos, table.sin, num_prefix);
    EXPECT_EQ(testing::max_abs_diff(x, y), 0.0f) << "in place";
  }
}

TEST(CpuVisionRope, BackwardIsTheInverseRotationAndMatchesFiniteDifferences) {
  const Table table = make_table(2, 8);
  OwnedTensor x = random_tensor({1, 5, 2, 8}, 31);
  OwnedTensor probe = random_tensor({1, 5, 2, 8}, 32);
  OwnedTensor dx({1, 5, 2, 8}, DType::kF32);
  cpu::vision_rope_backward(dx, probe, table.cos, table.sin, 1);
  EXPECT_TRUE(testing::close_to_reference(dx, vision_rope_reference(probe, table, 1, -1.0), 1e-6, 0.0, "backward"));

  OwnedTensor y({1, 5, 2, 8}, DType::kF32);
  const std::vector<double> fd = testing::finite_difference(
      x,
      [&] {
        cpu::vision_rope_forward(y, x, table.cos, table.sin, 1);
        return testing::dot(y, probe);
      },
      1e-2f);
  EXPECT_TRUE(testing::close_to_reference(dx, fd, 2e-4, 0.0, "backward_vs_fd"));

  cpu::vision_rope_forward(y, x, table.cos, table.sin, 1);
  cpu::vision_rope_backward(y, y, table.cos, table.sin, 1);
  EXPECT_TRUE(testing::all_close(y, x, 2e-6)) << "backward in place undoes the forward";
}

}  // namespace
}  // namespace plm
