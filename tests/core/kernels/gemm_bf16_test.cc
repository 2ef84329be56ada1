// The bf16-weight CPU GEMM (core/kernels/cpu/gemm_bf16.h): both paths (tiles, widened blocks + sgemm) with
// each ISA (scalar, AVX2, AVX-512; skipped where the CPU lacks it) against a double reference on the widened
// weights, and against the f32 GEMM on those weights, from which it may differ only in summation order.
#include <algorithm>
#include <cmath>
#include <iomanip>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "core/kernels/backends.h"
#include "core/kernels/cpu/gemm_bf16.h"
#include "tests/core/test_util.h"

namespace plm {
namespace {

using cpu::Bf16WeightGemm;
using cpu::SimdIsa;
using testing::random_tensor;
using testing::tensor_from;
using testing::to_vector;

enum class Path { kTiles, kWidenedBlocks };

struct Variant {
  SimdIsa isa;
  Path path;
};

void PrintTo(const Variant& v, std::ostream* os) {  // gtest's listing: no raw bytes
  *os << cpu::simd_isa_name(v.isa) << (v.path == Path::kTiles ? " tiles" : " widened blocks");
}

// Random a (M, K), bf16 w (N, K) and c0 (M, N); the reference alpha * a w^T + beta * c0 in double and, per
// element, the size of the terms it sums, |alpha| sum |a w| + |beta c0|: the scale that rounding errors in
// any summation order are proportional to.
struct Problem {
  int64_t m, n, k;
  float alpha, beta;
  OwnedTensor a, w, c0;
  std::vector<double> expected, scale;
};

Problem make_problem(int64_t m, int64_t n, int64_t k, float alpha, float beta, uint64_t seed) {
  Problem p{m, n, k, alpha, beta, random_tensor({m, k}, seed),
            random_tensor({n, k}, seed + 1, -1.0f, 1.0f, DType::kBF16), random_tensor({m, n}, seed + 2), {}, {}};
  const std::vector<float> a = to_vector(p.a), w = to_vector(p.w), c0 = to_vector(p.c0);
  p.expected.resize(static_cast<size_t>(m * n));
  p.scale.resize(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double dot = 0.0, magnitude = 0.0;
      for (int64_t q = 0; q < k; ++q) {
        const double term = static_cast<double>(a[i * k + q]) * w[j * k + q];
        dot += term;
        magnitude += std::abs(term);
      }
      const double carried = beta == 0.0f ? 0.0 : static_cast<double>(beta) * c0[i * n + j];
      p.expected[i * n + j] = alpha * dot + carried;
      p.scale[i * n + j] = std::abs(alpha) * magnitude + std::abs(carried);
    }
  }
  return p;
}

// max |actual - expected| / scale over the elements.
double scaled_error(const std::vector<float>& actual, const std::vector<double>& expected,
                    const std::vector<double>& scale) {
  double worst = 0.0;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double error = std::abs(actual[i] - expected[i]);
    worst = std::max(worst, error == 0.0 ? 0.0 : error / scale[i]);
  }
  return worst;
}

std::string scientific(double x) {
  std::ostringstream os;
  os << std::scientific << std::setprecision(2) << x;
  return os.str();
}

class GemmBf16Test : public ::testing::TestWithParam<Variant> {
 protected:
  void SetUp() override {
    if (static_cast<int>(GetParam().isa) > static_cast<int>(cpu::best_simd_isa())) {
      GTEST_SKIP() << "this CPU cannot run " << cpu::simd_isa_name(GetParam().isa);
    }
  }

  // c = alpha * a w^T + beta * c with the variant under test.
  void run(Tensor c, const Problem& p) const {
    const Bf16WeightGemm g{.a = p.a.data_as<float>(), .w = p.w.data_as<bf16>(), .c = c.data_as<float>(),
                           .m = p.m, .n = p.n, .k = p.k, .alpha = p.alpha, .beta = p.beta};
    if (GetParam().path == Path::kTiles) {
      cpu::gemm_bf16_tiles(g, GetParam().isa);
    } else {
      cpu::gemm_bf16_widened_blocks(g, GetParam().isa);
    }
  }
};

// Summation-order error of f32 over K <= 2049 terms, in units of the summed magnitude: measured <= 3e-7
// (the worst case K * 2^-24 = 1.2e-4 needs every rounding to go one way).
constexpr double kReferenceTolerance = 2e-6;
// Against the f32 GEMM on the same widened weights: both carry that error, in different orders.
constexpr double kF32Tolerance = 2e-6;

TEST_P(GemmBf16Test, MatchesDoubleReferenceAndF32Gemm) {
  const int64_t sizes[] = {1, 3, 17, 64, 1000, 2049};
  const float alphas[] = {1.0f, 0.5f, 2.0f}, betas[] = {0.0f, -1.5f, 1.0f};
  double worst_reference = 0.0, worst_f32 = 0.0;
  int cases = 0;
  for (const int64_t m : {1, 2, 3, 7, 8, 9, 33, 130}) {
    for (const int64_t n : sizes) {
      for (const int64_t k : sizes) {
        if (m * n * k > 5'000'000) continue;  // keeps the double reference fast; every N and K still runs
        const Problem p = make_problem(m, n, k, alphas[cases % 3], betas[cases % 3], 100 + cases);
        ++cases;
        OwnedTensor c = tensor_from({m, n}, to_vector(p.c0));
        run(c, p);
        // The f32 path: sgemm on the widened weights.
        OwnedTensor c_f32 = tensor_from({m, n}, to_vector(p.c0));
        OwnedTensor w_f32 = tensor_from({n, k}, to_vector(p.w));
        MatmulOptions options;
        options.trans_b = true;
        options.alpha = p.alpha;
        options.beta = p.beta;
        cpu::matmul(c_f32, p.a, w_f32, options);
        const std::vector<float> f32 = to_vector(c_f32);

        const double reference_error = scaled_error(to_vector(c), p.expected, p.scale);
        const double f32_error = scaled_error(to_vector(c), {f32.begin(), f32.end()}, p.scale);
        EXPECT_LE(reference_error, kReferenceTolerance) << "m " << m << ", n " << n << ", k " << k;
        EXPECT_LE(f32_error, kF32Tolerance) << "m " << m << ", n " << n << ", k " << k;
        worst_reference = std::max(worst_reference, reference_error);
        worst_f32 = std::max(worst_f32, f32_error);
      }
    }
  }
  EXPECT_GE(cases, 200);
  RecordProperty("cases", cases);
  RecordProperty("max_scaled_error_vs_double", scientific(worst_reference));
  RecordProperty("max_scaled_error_vs_f32_gemm", scientific(worst_f32));
}

TEST_P(GemmBf16Test, BetaZeroNeverReadsC) {
  for (const int64_t m : {1, 9, 130}) {
    const Problem p = make_problem(m, 67, 129, 1.5f, 0.0f, 7);
    OwnedTensor c({m, 67}, DType::kF32);
    std::fill_n(c.data_as<float>(), c.numel(), std::numeric_limits<float>::quiet_NaN());
    run(c, p);
    EXPECT_LE(scaled_error(to_vector(c), p.expected, p.scale), kReferenceTolerance) << "m" << m;
  }
}

TEST_P(GemmBf16Test, EmptyDimensions) {
  // K = 0: c = beta * c. M = 0 or N = 0: nothing is touched.
  const Problem p = make_problem(3, 5, 0, 1.0f, 0.5f, 9);
  OwnedTensor c = tensor_from({3, 5}, to_vector(p.c0));
  run(c, p);
  EXPECT_EQ(scaled_error(to_vector(c), p.expected, p.scale), 0.0);
  for (const auto& [m, n] : {std::pair<int64_t, int64_t>{0, 5}, {4, 0}}) {
    const Problem empty = make_problem(m, n, 3, 1.0f, 0.0f, 10);
    OwnedTensor c_empty({m, n}, DType::kF32);
    run(c_empty, empty);
  }
}

std::string variant_name(const ::testing::TestParamInfo<Variant>& info) {
  const std::string path = info.param.path == Path::kTiles ? "Tiles" : "WidenedBlocks";
  switch (info.param.isa) {
    case SimdIsa::kAvx512: return "Avx512" + path;
    case SimdIsa::kAvx2: return "Avx2" + path;
    case SimdIsa::kScalar: return "Scalar" + path;
  }
  return path;
}

INSTANTIATE_TEST_SUITE_P(EveryIsaAndPath, GemmBf16Test,
                         ::testing::Values(Variant{SimdIsa::kScalar, Path::kTiles},
                                           Variant{SimdIsa::kScalar, Path::kWidenedBlocks},
                                           Variant{SimdIsa::kAvx2, Path::kTiles},
                                           Variant{SimdIsa::kAvx2, Path::kWidenedBlocks},
                                           Variant{SimdIsa::kAvx512, Path::kTiles},
                                           Variant{SimdIsa::kAvx512, Path::kWidenedBlocks}),
                         variant_name);

}  // namespace
}  // namespace plm
