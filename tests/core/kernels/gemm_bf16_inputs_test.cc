// The bf16 compute mode's CPU GEMM (gemm_bf16_inputs of core/kernels/cpu/gemm_bf16.h) with each kernel
// (vdpbf16ps, skipped where the CPU lacks AVX512-BF16; the widening fallback, which runs everywhere) on odd
// shapes against a double reference on the bf16-rounded activations, and against the f32 GEMM on those rounded
// activations (the oracle of the mode), from which it may differ only in summation order. The same for
// sgemm_bf16 (training's bf16 mode: f32 operands in every transposition, both rounded) and matmul reaching it.
// Also round_to_bf16 against bf16's constructor.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/kernels/backends.h"
#include "core/kernels/cpu/gemm_bf16.h"
#include "core/kernels/cpu/gemm_bf16_packed.h"
#include "tests/core/test_util.h"

namespace plm {
namespace {

using cpu::Bf16InputKernel;
using testing::random_tensor;
using testing::tensor_from;
using testing::to_vector;

std::vector<float> rounded(const std::vector<float>& x) {
  std::vector<float> out(x.size());
  std::transform(x.begin(), x.end(), out.begin(), [](float v) { return static_cast<float>(bf16(v)); });
  return out;
}

class GemmBf16InputsTest : public ::testing::TestWithParam<Bf16InputKernel> {
 protected:
  void SetUp() override {
    if (GetParam() != Bf16InputKernel::kWidened && !cpu::cpu_has_avx512_bf16()) {
      GTEST_SKIP() << "this CPU has no AVX512-BF16";
    }
  }
};

// f32 summation-order error over K <= 2049 terms, in units of sum |a w| (as gemm_bf16_test.cc measures).
constexpr double kTolerance = 2e-6;

TEST_P(GemmBf16InputsTest, MatchesDoubleReferenceOnRoundedActivations) {
  double worst_reference = 0.0, worst_f32 = 0.0;
  int cases = 0;
  for (const int64_t m : {1, 2, 3, 5, 9, 33, 70}) {
    for (const int64_t n : {1, 7, 17, 64, 333}) {
      for (const int64_t k : {1, 2, 31, 32, 33, 100, 2049}) {
        const float alpha = cases % 2 == 0 ? 1.0f : 0.5f, beta = cases % 3 == 0 ? 0.0f : -1.5f;
        const OwnedTensor a = random_tensor({m, k}, 300 + cases);
        const OwnedTensor w = random_tensor({n, k}, 400 + cases, -1.0f, 1.0f, DType::kBF16);
        const std::vector<float> c0 = to_vector(random_tensor({m, n}, 500 + cases));
        ++cases;
        OwnedTensor c = tensor_from({m, n}, c0);
        cpu::gemm_bf16_inputs({.a = a.data_as<float>(), .w = w.data_as<bf16>(), .c = c.data_as<float>(), .m = m,
                               .n = n, .k = k, .alpha = alpha, .beta = beta},
                              GetParam());
        // The oracle: the f32 GEMM on the rounded activations and the widened weights.
        const std::vector<float> a_rounded = rounded(to_vector(a)), w_f32 = to_vector(w);
        OwnedTensor c_f32 = tensor_from({m, n}, c0);
        cpu::matmul(c_f32, tensor_from({m, k}, a_rounded), tensor_from({n, k}, w_f32),
                    {.trans_b = true, .alpha = alpha, .beta = beta});
        const std::vector<float> actual = to_vector(c), f32 = to_vector(c_f32);
        for (int64_t i = 0; i < m; ++i) {
          for (int64_t j = 0; j < n; ++j) {
            double dot = 0.0, magnitude = std::abs(beta * c0[i * n + j]);
            for (int64_t q = 0; q < k; ++q) {
              const double term = static_cast<double>(a_rounded[i * k + q]) * w_f32[j * k + q];
              dot += term;
              magnitude += std::abs(alpha * term);
            }
            const double expected = alpha * dot + (beta == 0.0f ? 0.0 : static_cast<double>(beta) * c0[i * n + j]);
            const double scale = std::max(magnitude, 1e-30);
            worst_reference = std::max(worst_reference, std::abs(actual[i * n + j] - expected) / scale);
            worst_f32 = std::max(worst_f32, std::abs(static_cast<double>(actual[i * n + j]) - f32[i * n + j]) / scale);
          }
        }
        ASSERT_LE(worst_reference, kTolerance) << "m " << m << ", n " << n << ", k " << k;
        ASSERT_LE(worst_f32, 2 * kTolerance) << "m " << m << ", n " << n << ", k " << k;
      }
    }
  }
  RecordProperty("cases", cases);
  RecordProperty("max_scaled_error_vs_double", std::to_string(worst_reference));
  RecordProperty("max_scaled_error_vs_f32_gemm", std::to_string(worst_f32));
}

TEST_P(GemmBf16InputsTest, BetaZeroNeverReadsC) {
  const int64_t m = 9, n = 21, k = 70;
  const OwnedTensor a = random_tensor({m, k}, 1);
  const OwnedTensor w = random_tensor({n, k}, 2, -1.0f, 1.0f, DType::kBF16);
  OwnedTensor c({m, n}, DType::kF32);
  std::fill_n(c.data_as<float>(), c.numel(), std::numeric_limits<float>::quiet_NaN());
  cpu::gemm_bf16_inputs(
      {.a = a.data_as<float>(), .w = w.data_as<bf16>(), .c = c.data_as<float>(), .m = m, .n = n, .k = k,
       .alpha = 1.0f, .beta = 0.0f},
      GetParam());
  for (float v : to_vector(c)) EXPECT_TRUE(std::isfinite(v));
}

INSTANTIATE_TEST_SUITE_P(EveryKernel, GemmBf16InputsTest,
                         ::testing::Values(Bf16InputKernel::kDotBf16, Bf16InputKernel::kPackedBf16,
                                           Bf16InputKernel::kWidened),
                         [](const ::testing::TestParamInfo<Bf16InputKernel>& info) {
                           switch (info.param) {
                             case Bf16InputKernel::kDotBf16: return "DotBf16";
                             case Bf16InputKernel::kPackedBf16: return "PackedBf16";
                             case Bf16InputKernel::kWidened: break;
                           }
                           return "Widened";
                         });

class SgemmBf16Test : public ::testing::TestWithParam<Bf16InputKernel> {
 protected:
  void SetUp() override {
    if (GetParam() != Bf16InputKernel::kWidened && !cpu::cpu_has_avx512_bf16()) {
      GTEST_SKIP() << "this CPU has no AVX512-BF16";
    }
  }
};

// Every transposition on odd shapes (tails of the 14-row and 32-column tiles, odd K, K past one 2048-value
// block), with ldc > N, against a double reference on the rounded operands.
TEST_P(SgemmBf16Test, MatchesDoubleReferenceOnRoundedOperandsInEveryTransposition) {
  double worst = 0.0;
  int cases = 0;
  for (const bool trans_a : {false, true}) {
    for (const bool trans_b : {false, true}) {
      for (const auto& [m, n, k] : {std::array<int64_t, 3>{1, 1, 1}, {15, 33, 3}, {29, 300, 2051}, {70, 17, 64}}) {
        const float alpha = cases % 2 == 0 ? 1.0f : 0.5f, beta = cases % 3 == 0 ? 0.0f : -1.5f;
        const int64_t ldc = n + 3;
        const std::vector<float> a = to_vector(random_tensor({m * k}, 600 + cases));
        const std::vector<float> b = to_vector(random_tensor({k * n}, 700 + cases));
        std::vector<float> c = to_vector(random_tensor({m * ldc}, 800 + cases));
        const std::vector<float> c0 = c;
        ++cases;
        cpu::sgemm_bf16({.a = a.data(), .b = b.data(), .c = c.data(), .m = m, .n = n, .k = k, .trans_a = trans_a,
                         .trans_b = trans_b, .alpha = alpha, .beta = beta, .ldc = ldc},
                        GetParam());
        const std::vector<float> ar = rounded(a), br = rounded(b);
        for (int64_t i = 0; i < m; ++i) {
          for (int64_t j = 0; j < n; ++j) {
            double dot = 0.0, magnitude = std::abs(beta * c0[i * ldc + j]);
            for (int64_t q = 0; q < k; ++q) {
              const double term = static_cast<double>(trans_a ? ar[q * m + i] : ar[i * k + q]) *
                                  (trans_b ? br[j * k + q] : br[q * n + j]);
              dot += term;
              magnitude += std::abs(alpha * term);
            }
            const double expected = alpha * dot + (beta == 0.0f ? 0.0 : static_cast<double>(beta) * c0[i * ldc + j]);
            worst = std::max(worst, std::abs(c[i * ldc + j] - expected) / std::max(magnitude, 1e-30));
          }
          for (int64_t j = n; j < ldc; ++j) ASSERT_EQ(c[i * ldc + j], c0[i * ldc + j]) << "wrote past N";
        }
        ASSERT_LE(worst, kTolerance) << "m " << m << ", n " << n << ", k " << k << ", trans_a " << trans_a
                                     << ", trans_b " << trans_b;
      }
    }
  }
  RecordProperty("max_scaled_error_vs_double", std::to_string(worst));
}

INSTANTIATE_TEST_SUITE_P(EveryKernel, SgemmBf16Test,
                         ::testing::Values(Bf16InputKernel::kPackedBf16, Bf16InputKernel::kWidened),
                         [](const ::testing::TestParamInfo<Bf16InputKernel>& info) {
                           return info.param == Bf16InputKernel::kWidened ? "Widened" : "PackedBf16";
                         });

// matmul with compute kBF16 and an f32 b (training's path) equals the f32 matmul on the rounded operands up to
// summation order, in each layout Linear's forward and backward use.
TEST(MatmulBf16ComputeTest, F32OperandsAreRoundedInEveryLinearLayout) {
  const int64_t rows = 37, in = 45, out = 29;
  const OwnedTensor x = random_tensor({rows, in}, 1), w = random_tensor({out, in}, 2);
  const OwnedTensor dy = random_tensor({rows, out}, 3);
  const auto rounded_tensor = [](const OwnedTensor& t, Shape shape) {
    return tensor_from(shape, rounded(to_vector(t)));
  };
  const OwnedTensor xr = rounded_tensor(x, {rows, in}), wr = rounded_tensor(w, {out, in});
  const OwnedTensor dyr = rounded_tensor(dy, {rows, out});
  struct Layout {
    const Tensor a, b;
    Shape c;
    MatmulOptions options;
    const Tensor a_rounded, b_rounded;
  };
  const Layout layouts[] = {
      {x, w, {rows, out}, {.trans_b = true}, xr, wr},     // y = x W^T
      {dy, w, {rows, in}, {}, dyr, wr},                   // dx = dy W
      {dy, x, {out, in}, {.trans_a = true}, dyr, xr},     // dW = dy^T x
  };
  for (const Layout& l : layouts) {
    OwnedTensor c(l.c, DType::kF32), expected(l.c, DType::kF32);
    MatmulOptions bf16_options = l.options;
    bf16_options.compute = DType::kBF16;
    cpu::matmul(c, l.a, l.b, bf16_options);
    cpu::matmul(expected, l.a_rounded, l.b_rounded, l.options);
    const std::vector<float> actual = to_vector(c), want = to_vector(expected);
    for (size_t i = 0; i < actual.size(); ++i) ASSERT_NEAR(actual[i], want[i], 1e-4 * (1.0f + std::abs(want[i])));
  }
}

TEST(RoundToBf16Test, EqualsTheScalarConversionBitForBit) {
  std::vector<float> x = to_vector(random_tensor({1001}, 11, -3.0f, 3.0f));
  const uint32_t specials[] = {0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00001u, 0xff800001u,
                               0x00000001u, 0x807fffffu, 0x3f808000u, 0x3f818000u, 0x7f7fffffu, 0x3f80ffffu};
  for (size_t i = 0; i < std::size(specials); ++i) x[i * 7] = float_from_bits(specials[i]);
  std::vector<bf16> out(x.size());
  cpu::round_to_bf16(x.data(), out.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(out[i].bits, bf16(x[i]).bits) << "element " << i << " bits " << std::hex << float_bits(x[i]);
  }
}

}  // namespace
}  // namespace plm
