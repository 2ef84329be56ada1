// The training kernels of vector_kernels.h (exp sums and scaled exps, the softmax gradient, sums, the norm rows,
// the GELU and SwiGLU gradients) and the bf16 rounding ones (round_bf16, exp_sum_bf16) with every ISA this CPU runs, against double references on lengths around the
// vector widths (the masked tails), in place where the contract allows it. The exp, row max and dot kernels are
// tested in attention_blocked_test.cc, the activation forwards in activations_test.cc.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/kernels/cpu/vector_kernels.h"
#include "tests/core/kernels/simd_isas.h"
#include "tests/core/test_util.h"

namespace plm {
namespace {

using cpu::SimdIsa;
using testing::runnable_isas;

constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;

// Lengths around the widths 8 and 16, and longer rows (a norm's 1024 + 1, a vocabulary chunk).
const std::vector<int64_t>& lengths() {
  static const std::vector<int64_t> all = {0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 100, 1025, 8191};
  return all;
}

std::vector<float> random_values(int64_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  return testing::to_vector(testing::random_tensor({n + 1}, seed, lo, hi));  // +1: n may be 0
}

TEST(CpuVectorKernels, ExpSumsAndScaledExpMatchDouble) {
  for (const SimdIsa isa : runnable_isas()) {
    SCOPED_TRACE(cpu::simd_isa_name(isa));
    const cpu::VectorKernels& simd = cpu::vector_kernels(isa);
    for (const int64_t n : lengths()) {
      SCOPED_TRACE("n " + std::to_string(n));
      std::vector<float> x = random_values(n, 10 + n, -30.0f, 5.0f);
      if (n > 3) x[3] = -std::numeric_limits<float>::infinity();  // a masked logit
      const float shift = 2.5f, scale = -0.75f;
      // x - shift rounds in f32 in the kernels (a relative error of up to 1e-6 in exp at |x| ~ 30).
      const auto shifted = [&](int64_t j) { return static_cast<double>(x[j] - shift); };
      double expected_sum = 0.0;
      for (int64_t j = 0; j < n; ++j) expected_sum += std::exp(shifted(j));
      EXPECT_NEAR(simd.sum_exp(x.data(), n, shift), expected_sum, 1e-6 * expected_sum + 1e-30);

      std::vector<float> y(static_cast<size_t>(n + 1), 42.0f);
      simd.scaled_exp(x.data(), y.data(), n, shift, scale);
      for (int64_t j = 0; j < n; ++j) {
        const double want = scale * std::exp(shifted(j));
        ASSERT_NEAR(y[j], want, 4e-7 * std::abs(want) + 1e-38) << "j " << j;
      }
      EXPECT_EQ(y[n], 42.0f) << "wrote past n";
      simd.scaled_exp(x.data(), x.data(), n, shift, scale);  // in place
      for (int64_t j = 0; j < n; ++j) ASSERT_EQ(x[j], y[j]) << "in place, j " << j;
    }
  }
}

TEST(CpuVectorKernels, SoftmaxGradSumAndSumSquaresMatchDouble) {
  for (const SimdIsa isa : runnable_isas()) {
    SCOPED_TRACE(cpu::simd_isa_name(isa));
    const cpu::VectorKernels& simd = cpu::vector_kernels(isa);
    for (const int64_t n : lengths()) {
      SCOPED_TRACE("n " + std::to_string(n));
      const std::vector<float> p = random_values(n, 20 + n, 0.0f, 1.0f);
      std::vector<float> dp = random_values(n, 30 + n, -2.0f, 2.0f);
      const float delta = 0.375f;
      std::vector<float> ds(static_cast<size_t>(n + 1), 42.0f);
      simd.softmax_grad(p.data(), dp.data(), delta, ds.data(), n);
      double total = 0.0, magnitude = 0.0, squares = 0.0;
      const float center = 0.25f;
      for (int64_t j = 0; j < n; ++j) {
        ASSERT_NEAR(ds[j], static_cast<double>(p[j]) * (static_cast<double>(dp[j]) - delta), 1e-6) << "j " << j;
        total += dp[j];
        magnitude += std::abs(static_cast<double>(dp[j]));
        squares += (static_cast<double>(dp[j]) - center) * (static_cast<double>(dp[j]) - center);
      }
      EXPECT_EQ(ds[n], 42.0f) << "wrote past n";
      EXPECT_NEAR(simd.sum(dp.data(), n), total, 1e-6 * magnitude + 1e-30);
      EXPECT_NEAR(simd.sum_squares(dp.data(), n, center), squares, 1e-6 * squares + 1e-30);
      simd.softmax_grad(p.data(), dp.data(), delta, dp.data(), n);  // in place over dp
      for (int64_t j = 0; j < n; ++j) ASSERT_EQ(dp[j], ds[j]) << "in place, j " << j;
    }
  }
}

TEST(CpuVectorKernels, NormRowsMatchDouble) {
  for (const SimdIsa isa : runnable_isas()) {
    SCOPED_TRACE(cpu::simd_isa_name(isa));
    const cpu::VectorKernels& simd = cpu::vector_kernels(isa);
    for (const int64_t n : lengths()) {
      if (n == 0) continue;
      SCOPED_TRACE("n " + std::to_string(n));
      const std::vector<float> x = random_values(n, 40 + n, -3.0f, 3.0f), w = random_values(n, 50 + n, 0.5f, 1.5f);
      const std::vector<float> b = random_values(n, 60 + n);
      std::vector<float> dy = random_values(n, 70 + n);
      const float mean = 0.125f, rstd = 1.75f;
      for (const bool with_bias : {true, false}) {
        std::vector<float> y(static_cast<size_t>(n + 1), 42.0f);
        simd.norm_affine(x.data(), w.data(), with_bias ? b.data() : nullptr, y.data(), n, mean, rstd);
        for (int64_t j = 0; j < n; ++j) {
          const double want = (static_cast<double>(x[j]) - mean) * rstd * w[j] + (with_bias ? b[j] : 0.0);
          ASSERT_NEAR(y[j], want, 1e-6 * (1.0 + std::abs(want))) << "bias " << with_bias << " j " << j;
        }
        EXPECT_EQ(y[n], 42.0f) << "wrote past n";
      }
      double sum_g = 0.0, sum_g_x_hat = 0.0, magnitude = 0.0;
      for (int64_t j = 0; j < n; ++j) {
        const double g = static_cast<double>(w[j]) * dy[j], x_hat = (static_cast<double>(x[j]) - mean) * rstd;
        sum_g += g;
        sum_g_x_hat += g * x_hat;
        magnitude += std::abs(g * x_hat);
      }
      float got_g = 0.0f, got_g_x_hat = 0.0f;
      simd.norm_grad_sums(x.data(), w.data(), dy.data(), n, mean, rstd, &got_g, &got_g_x_hat);
      EXPECT_NEAR(got_g, sum_g, 2e-6 * magnitude);
      EXPECT_NEAR(got_g_x_hat, sum_g_x_hat, 2e-6 * magnitude);

      const float mean_g = 0.3f, mean_g_x_hat = -0.2f;
      std::vector<float> dx(static_cast<size_t>(n + 1), 42.0f);
      simd.norm_backward(x.data(), w.data(), dy.data(), dx.data(), n, mean, rstd, mean_g, mean_g_x_hat);
      for (int64_t j = 0; j < n; ++j) {
        const double x_hat = (static_cast<double>(x[j]) - mean) * rstd;
        const double want = rstd * (static_cast<double>(w[j]) * dy[j] - mean_g - x_hat * mean_g_x_hat);
        ASSERT_NEAR(dx[j], want, 2e-6 * (1.0 + std::abs(want))) << "j " << j;
      }
      EXPECT_EQ(dx[n], 42.0f) << "wrote past n";
      simd.norm_backward(x.data(), w.data(), dy.data(), dy.data(), n, mean, rstd, mean_g, mean_g_x_hat);
      for (int64_t j = 0; j < n; ++j) ASSERT_EQ(dy[j], dx[j]) << "in place over dy, j " << j;
    }
  }
}

TEST(CpuVectorKernels, ActivationGradientsMatchDouble) {
  for (const SimdIsa isa : runnable_isas()) {
    SCOPED_TRACE(cpu::simd_isa_name(isa));
    const cpu::VectorKernels& simd = cpu::vector_kernels(isa);
    for (const int64_t n : lengths()) {
      SCOPED_TRACE("n " + std::to_string(n));
      std::vector<float> x = random_values(n, 80 + n, -8.0f, 8.0f), up = random_values(n, 90 + n, -3.0f, 3.0f);
      const float specials[] = {0.0f, -0.0f, 30.0f, -30.0f, 100.0f, -100.0f, 1e-30f};
      for (size_t i = 0; i < std::size(specials) && static_cast<int64_t>(i * 2) < n; ++i) x[i * 2] = specials[i];
      std::vector<float> dy = random_values(n, 100 + n, -2.0f, 2.0f);
      std::vector<float> dx(static_cast<size_t>(n + 1), 42.0f), dgate(dx), dup(dx);
      simd.gelu_backward(x.data(), dy.data(), dx.data(), n);
      simd.swiglu_backward(x.data(), up.data(), dy.data(), dgate.data(), dup.data(), n);
      for (int64_t j = 0; j < n; ++j) {
        const double v = x[j], d = dy[j], u = up[j];
        const double want_dx = d * (0.5 * (1.0 + std::erf(v * kInvSqrt2)) + v * kInvSqrt2Pi * std::exp(-0.5 * v * v));
        ASSERT_NEAR(dx[j], want_dx, 1e-6 * (1.0 + std::abs(want_dx))) << "gelu'(" << v << ")";
        const double s = 1.0 / (1.0 + std::exp(-v));
        const double want_dgate = d * u * s * (1.0 + v * (1.0 - s)), want_dup = d * v * s;
        ASSERT_NEAR(dgate[j], want_dgate, 1e-6 * (1.0 + std::abs(want_dgate))) << "silu'(" << v << ")";
        ASSERT_NEAR(dup[j], want_dup, 1e-6 * (1.0 + std::abs(want_dup))) << "silu(" << v << ")";
      }
      EXPECT_EQ(dx[n], 42.0f) << "wrote past n";
      EXPECT_EQ(dgate[n], 42.0f) << "wrote past n";
      // In place: dx over dy; dgate over gate and dup over up.
      std::vector<float> dy_in_place = dy;
      simd.gelu_backward(x.data(), dy_in_place.data(), dy_in_place.data(), n);
      simd.swiglu_backward(x.data(), up.data(), dy.data(), x.data(), up.data(), n);
      for (int64_t j = 0; j < n; ++j) {
        ASSERT_EQ(dy_in_place[j], dx[j]) << "gelu in place, j " << j;
        ASSERT_EQ(x[j], dgate[j]) << "swiglu in place, j " << j;
        ASSERT_EQ(up[j], dup[j]) << "swiglu in place, j " << j;
      }
    }
  }
}

TEST(CpuVectorKernels, RoundBf16EqualsTheScalarConversionBitForBit) {
  const uint32_t specials[] = {0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00001u, 0xff800001u,
                               0x00000001u, 0x807fffffu, 0x3f808000u, 0x3f818000u, 0x7f7fffffu, 0x3f80ffffu};
  for (const SimdIsa isa : runnable_isas()) {
    SCOPED_TRACE(cpu::simd_isa_name(isa));
    for (const int64_t n : lengths()) {
      SCOPED_TRACE("n " + std::to_string(n));
      std::vector<float> x = random_values(n, 200 + n, -3.0f, 3.0f);
      for (size_t i = 0; i < std::size(specials) && i < static_cast<size_t>(n); ++i) {
        x[i] = float_from_bits(specials[i]);
      }
      std::vector<bf16> y(static_cast<size_t>(n + 1), bf16(42.0f));
      cpu::vector_kernels(isa).round_bf16(x.data(), y.data(), n);
      for (int64_t j = 0; j < n; ++j) ASSERT_EQ(y[j].bits, bf16(x[j]).bits) << "j " << j;
      EXPECT_EQ(static_cast<float>(y[n]), 42.0f) << "wrote past n";
    }
  }
}

TEST(CpuVectorKernels, ExpSumBf16IsExpSumRounded) {
  for (const SimdIsa isa : runnable_isas()) {
    SCOPED_TRACE(cpu::simd_isa_name(isa));
    const cpu::VectorKernels& simd = cpu::vector_kernels(isa);
    for (const int64_t n : lengths()) {
      SCOPED_TRACE("n " + std::to_string(n));
      const std::vector<float> x = random_values(n, 300 + n, -100.0f, 2.0f);  // through exp's underflow
      std::vector<float> exps = x;
      const float sum = simd.exp_sum(exps.data(), n, 1.5f);
      std::vector<bf16> p(static_cast<size_t>(n + 1), bf16(42.0f));
      EXPECT_EQ(simd.exp_sum_bf16(x.data(), n, 1.5f, p.data()), sum);
      for (int64_t j = 0; j < n; ++j) ASSERT_EQ(p[j].bits, bf16(exps[j]).bits) << "j " << j;
      EXPECT_EQ(static_cast<float>(p[n]), 42.0f) << "wrote past n";
    }
  }
}

}  // namespace
}  // namespace plm
