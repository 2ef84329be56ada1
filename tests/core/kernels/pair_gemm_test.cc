// pair_gemm (core/kernels/cpu/pair_gemm.h), the bf16 attention's GEMM, with each kernel (vdpbf16ps, skipped where
// the CPU lacks AVX512-BF16; the widened fallback with the CPU's widest ISA, and with scalar code, both of which run
// everywhere) against a double reference on odd shapes, with b packed by both packers from f32 rows (rounded) and
// leading dimensions wider than the matrices.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/kernels/cpu/pair_gemm.h"
#include "tests/core/test_util.h"

namespace plm {
namespace {

using cpu::Bf16InputKernel;
using cpu::kPairLanes;

enum class Variant { kDotBf16, kWidened, kWidenedScalar };

void run(const cpu::PairGemm& g, Variant variant) {
  switch (variant) {
    case Variant::kDotBf16: return cpu::pair_gemm(g, Bf16InputKernel::kDotBf16);
    case Variant::kWidened: return cpu::pair_gemm(g, Bf16InputKernel::kWidened);
    case Variant::kWidenedScalar: return cpu::pair_gemm_widened(g, cpu::SimdIsa::kScalar);
  }
}

class PairGemmTest : public ::testing::TestWithParam<Variant> {
 protected:
  void SetUp() override {
    if (GetParam() == Variant::kDotBf16 && !cpu::cpu_has_avx512_bf16()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  }
};

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// f32 summation-order error over K <= 1026 terms, in units of sum |a b| (+ |c| when accumulating).
constexpr double kTolerance = 2e-6;

TEST_P(PairGemmTest, MatchesDoubleReferenceOnRoundedOperands) {
  double worst = 0.0;
  int cases = 0;
  for (const int64_t m : {1, 5, 7, 13, 33}) {
    for (const int64_t n : {1, 16, 33, 64, 80, 130}) {
      for (const int64_t k : {2, 64, 80, 128, 1025}) {
        for (const bool transposed : {false, true}) {
          ++cases;
          const int64_t padded_n = round_up(n, kPairLanes), padded_k = round_up(k, 2);
          const std::vector<float> a_f32 = testing::to_vector(testing::random_tensor({m, k}, 10 + cases, -2.0f, 2.0f));
          // b (k, n) from f32 rows: as k rows of n (pack_pairs) or as n rows of k, transposed.
          const std::vector<float> rows =
              testing::to_vector(testing::random_tensor({transposed ? n : k, transposed ? k : n}, 90 + cases));
          const int64_t width = transposed ? k : n;
          const auto row_ptr = [&](int64_t r) { return rows.data() + r * width; };
          std::vector<bf16> b(static_cast<size_t>(padded_k * padded_n));
          if (transposed) {
            cpu::pack_pairs_transposed<float>(row_ptr, n, k, padded_n, padded_k, b.data());
          } else {
            cpu::pack_pairs<float>(row_ptr, k, n, padded_k, padded_n, b.data());
          }
          const int64_t lda = padded_k + 6, ldc = padded_n + 5;
          std::vector<bf16> a(static_cast<size_t>(m * lda));
          for (int64_t i = 0; i < m; ++i) {
            for (int64_t p = 0; p < k; ++p) a[i * lda + p] = bf16(a_f32[i * k + p]);
          }
          const std::vector<float> c0 = testing::to_vector(testing::random_tensor({m, ldc}, 50 + cases));
          std::vector<float> c = c0;
          const bool accumulate = cases % 2 == 0;
          const float alpha = cases % 3 == 0 ? 0.125f : 1.0f;
          run({.a = a.data(), .b = b.data(), .c = c.data(), .m = m, .n = padded_n, .k = padded_k, .lda = lda,
               .ldb = 2 * padded_n, .ldc = ldc, .alpha = alpha, .accumulate = accumulate},
              GetParam());
          for (int64_t i = 0; i < m; ++i) {
            for (int64_t j = 0; j < padded_n; ++j) {
              double dot = 0.0, magnitude = 0.0;
              for (int64_t p = 0; p < k && j < n; ++p) {
                const float b_value = transposed ? rows[j * k + p] : rows[p * n + j];
                const double term = static_cast<double>(static_cast<float>(a[i * lda + p])) *
                                    static_cast<float>(bf16(b_value));
                dot += term;
                magnitude += std::abs(term);
              }
              const double expected = alpha * dot + (accumulate ? c0[i * ldc + j] : 0.0);
              const double scale = std::abs(alpha) * magnitude + (accumulate ? std::abs(c0[i * ldc + j]) : 0.0);
              const double error = std::abs(c[i * ldc + j] - expected) / std::max(scale, 1e-30);
              worst = std::max(worst, error);
              ASSERT_LE(error, kTolerance) << "m " << m << " n " << n << " k " << k << " at (" << i << ", " << j << ")";
            }
            for (int64_t j = padded_n; j < ldc; ++j) ASSERT_EQ(c[i * ldc + j], c0[i * ldc + j]) << "beyond n";
          }
        }
      }
    }
  }
  RecordProperty("cases", cases);
  RecordProperty("max_scaled_error_vs_double", std::to_string(worst));
}

INSTANTIATE_TEST_SUITE_P(EveryKernel, PairGemmTest,
                         ::testing::Values(Variant::kDotBf16, Variant::kWidened, Variant::kWidenedScalar),
                         [](const ::testing::TestParamInfo<Variant>& info) -> std::string {
                           switch (info.param) {
                             case Variant::kDotBf16: return "DotBf16";
                             case Variant::kWidened: return "Widened";
                             case Variant::kWidenedScalar: return "WidenedScalar";
                           }
                           return "?";
                         });

}  // namespace
}  // namespace plm
