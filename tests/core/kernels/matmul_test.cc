// plm::cpu::matmul against a double-precision reference: every transpose combination, odd and empty
// sizes, batched and shared b, alpha/beta/bias, bf16 weights.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/kernels/backends.h"
#include "tests/core/kernels/reference_check.h"
#include "tests/core/test_util.h"

namespace plm {
namespace {

using testing::close_to_reference;
using testing::random_tensor;
using testing::to_doubles;

struct GemmCase {
  int64_t batch = 1;  // leading dims flattened; the tensors carry them as (batch, ...)
  int64_t m = 0, n = 0, k = 0;
  bool shared_b = false;
  MatmulOptions options = {};
};

// MatmulOptions::bias has no default member initializer, so designated initializers that omit it trip
// -Wmissing-field-initializers; options are built field by field instead.
MatmulOptions make_options(bool trans_a, bool trans_b, float alpha = 1.0f, float beta = 0.0f, Tensor bias = {}) {
  MatmulOptions o;
  o.trans_a = trans_a;
  o.trans_b = trans_b;
  o.alpha = alpha;
  o.beta = beta;
  o.bias = bias;
  return o;
}

// c = alpha * op(a) op(b) + beta * c0 + bias per batch entry, in double from the f32 (or bf16) inputs.
std::vector<double> reference(const GemmCase& g, Tensor a, Tensor b, Tensor c0) {
  const std::vector<double> av = to_doubles(a), bv = to_doubles(b), cv = to_doubles(c0);
  const std::vector<double> bias = g.options.bias.defined() ? to_doubles(g.options.bias) : std::vector<double>(g.n);
  std::vector<double> c(static_cast<size_t>(g.batch * g.m * g.n));
  for (int64_t e = 0; e < g.batch; ++e) {
    const double* ae = av.data() + e * g.m * g.k;
    const double* be = bv.data() + (g.shared_b ? 0 : e * g.k * g.n);
    for (int64_t i = 0; i < g.m; ++i) {
      for (int64_t j = 0; j < g.n; ++j) {
        double acc = 0.0;
        for (int64_t p = 0; p < g.k; ++p) {
          const double a_ip = g.options.trans_a ? ae[p * g.m + i] : ae[i * g.k + p];
          const double b_pj = g.options.trans_b ? be[j * g.k + p] : be[p * g.n + j];
          acc += a_ip * b_pj;
        }
        const int64_t at = (e * g.m + i) * g.n + j;
        c[at] = g.options.alpha * acc + (g.options.beta == 0.0f ? 0.0 : g.options.beta * cv[at]) + bias[j];
      }
    }
  }
  return c;
}

Shape with_batch(const GemmCase& g, int64_t rows, int64_t cols) {
  return g.batch == 1 ? Shape{rows, cols} : Shape{g.batch, rows, cols};
}

// Runs one case with random operands and compares with the reference.
void check_case(const GemmCase& g, DType b_dtype = DType::kF32, uint64_t seed = 1) {
  const auto& o = g.options;
  OwnedTensor a = random_tensor(with_batch(g, o.trans_a ? g.k : g.m, o.trans_a ? g.m : g.k), seed);
  const Shape b_shape = Shape{o.trans_b ? g.n : g.k, o.trans_b ? g.k : g.n};
  OwnedTensor b = random_tensor(g.shared_b ? b_shape : with_batch(g, b_shape[0], b_shape[1]), seed + 1, -1.0f,
                                1.0f, b_dtype);
  OwnedTensor c = random_tensor(with_batch(g, g.m, g.n), seed + 2);
  const std::vector<double> expected = reference(g, a, b, c);
  cpu::matmul(c, a, b, o);
  const std::string label = "err_b" + std::to_string(g.batch) + "_m" + std::to_string(g.m) + "_n" +
                            std::to_string(g.n) + "_k" + std::to_string(g.k) + "_ta" + std::to_string(o.trans_a) +
                            "_tb" + std::to_string(o.trans_b);
  // f32 sums of K products of magnitude <= 1: error grows like K * 2^-24.
  const double atol = 1e-6 + 2e-7 * static_cast<double>(g.k);
  EXPECT_TRUE(close_to_reference(c, expected, atol, 1e-6, label)) << label;
}

const int64_t kSizes[][3] = {{1, 1, 1}, {3, 17, 33}, {65, 33, 17}, {17, 1, 65}, {1, 65, 3}, {33, 3, 1}};

TEST(CpuMatmulTest, AllTransposeCombinationsMatchReference) {
  for (const bool trans_a : {false, true}) {
    for (const bool trans_b : {false, true}) {
      for (const auto& [m, n, k] : kSizes) {
        check_case({.m = m, .n = n, .k = k, .options = make_options(trans_a, trans_b)});
      }
    }
  }
}

TEST(CpuMatmulTest, EmptyDimensions) {
  // K = 0: the product is zero, so c = beta * c + bias.
  OwnedTensor bias = random_tensor({5}, 7);
  check_case({.m = 3, .n = 5, .k = 0, .options = make_options(false, false, 1.0f, 0.5f, bias)});
  check_case({.m = 3, .n = 5, .k = 0, .options = make_options(true, true)});
  // M = 0 or N = 0: nothing to write, nothing may crash.
  check_case({.m = 0, .n = 5, .k = 3});
  check_case({.m = 4, .n = 0, .k = 3, .options = make_options(false, true)});
  check_case({.batch = 2, .m = 0, .n = 5, .k = 3, .shared_b = true});
}

TEST(CpuMatmulTest, BatchedB) {
  for (const bool trans_a : {false, true}) {
    for (const bool trans_b : {false, true}) {
      check_case({.batch = 3, .m = 17, .n = 5, .k = 33, .options = make_options(trans_a, trans_b)});
    }
  }
}

TEST(CpuMatmulTest, SharedTwoDimensionalB) {
  // trans_a = false folds the batch into M; trans_a = true loops over the batch.
  for (const bool trans_a : {false, true}) {
    for (const bool trans_b : {false, true}) {
      check_case({.batch = 3, .m = 17, .n = 33, .k = 5, .shared_b = true,
                  .options = make_options(trans_a, trans_b)});
    }
  }
}

TEST(CpuMatmulTest, RankFourBatch) {
  OwnedTensor a = random_tensor({2, 3, 5, 7}, 11);
  OwnedTensor b = random_tensor({2, 3, 7, 4}, 12);
  OwnedTensor c({2, 3, 5, 4}, DType::kF32);
  cpu::matmul(c, a, b);
  GemmCase g{.batch = 6, .m = 5, .n = 4, .k = 7};
  OwnedTensor zero = random_tensor({6, 5, 4}, 13);  // beta = 0: its values must not matter
  EXPECT_TRUE(close_to_reference(c, reference(g, a, b, zero), 1e-5, 1e-6, "err_rank4"));
}

TEST(CpuMatmulTest, AlphaBetaBias) {
  OwnedTensor bias = random_tensor({33}, 21);
  for (const bool trans_b : {false, true}) {
    check_case({.batch = 2, .m = 17, .n = 33, .k = 65, .shared_b = true,
                .options = make_options(false, trans_b, 0.5f, -1.5f, bias)});
    check_case({.m = 3, .n = 33, .k = 1, .options = make_options(false, trans_b, 2.0f, 1.0f, bias)});
  }
  // c of 2 x 257 x 129 elements exceeds kMinParallelWork: the threaded bias loop runs.
  OwnedTensor wide_bias = random_tensor({129}, 22);
  check_case({.batch = 2, .m = 257, .n = 129, .k = 17, .shared_b = true,
              .options = make_options(false, true, 1.0f, 0.0f, wide_bias)});
}

TEST(CpuMatmulTest, BetaZeroNeverReadsC) {
  OwnedTensor a = random_tensor({3, 4}, 31);
  OwnedTensor b = random_tensor({4, 5}, 32);
  OwnedTensor c({3, 5}, DType::kF32);
  std::fill_n(c.data_as<float>(), c.numel(), std::numeric_limits<float>::quiet_NaN());
  cpu::matmul(c, a, b);
  GemmCase g{.m = 3, .n = 5, .k = 4};
  EXPECT_TRUE(close_to_reference(c, reference(g, a, b, c), 1e-6, 1e-6, "err_beta0_nan_c"));
}

TEST(CpuMatmulTest, Bf16WeightsAreWidenedExactly) {
  // The reference reads the same bf16 values, so only f32 accumulation error remains. bf16 b is (N, K) weights
  // with trans_b; tests/core/kernels/gemm_bf16_test.cc covers the kernels themselves.
  check_case({.m = 17, .n = 33, .k = 65, .options = make_options(false, true)}, DType::kBF16);
  // b of 257 x 129 elements exceeds kMinParallelWork: threads split the weight rows.
  check_case({.m = 5, .n = 129, .k = 257, .options = make_options(false, true)}, DType::kBF16);
  // A shared 2-D b folds the batch into M: 3 x 40 = 120 rows take the widened-blocks path with OpenBLAS.
  OwnedTensor bias = random_tensor({17}, 23);
  check_case({.batch = 3, .m = 40, .n = 17, .k = 33, .shared_b = true,
              .options = make_options(false, true, 0.5f, -1.5f, bias)},
             DType::kBF16);
  check_case({.batch = 2, .m = 5, .n = 3, .k = 17, .options = make_options(false, true, 2.0f, 1.0f)}, DType::kBF16);
}

// OpenMP and OpenBLAS threads may be running: re-execute the binary rather than fork it.
TEST(CpuMatmulDeathTest, MismatchedShapesNameTheOperands) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  OwnedTensor a = random_tensor({3, 4}, 41), b = random_tensor({5, 6}, 42);
  OwnedTensor c({3, 6}, DType::kF32);
  EXPECT_DEATH(cpu::matmul(c, a, b), "matmul: c f32\\(3, 6\\) cpu = op\\(a f32\\(3, 4\\) cpu\\) op\\(b f32\\(5, 6\\)");
}

TEST(CpuMatmulDeathTest, Bf16WeightsNeedTransB) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  OwnedTensor a = random_tensor({3, 4}, 45), b = random_tensor({4, 5}, 46, -1.0f, 1.0f, DType::kBF16);
  OwnedTensor c({3, 5}, DType::kF32);
  EXPECT_DEATH(cpu::matmul(c, a, b), "matmul: bf16 b \\(weights\\) needs trans_b and a plain a");
}

TEST(CpuMatmulDeathTest, StridedViewIsRejected) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  OwnedTensor a = random_tensor({3, 8}, 43), b = random_tensor({4, 5}, 44);
  OwnedTensor c({3, 5}, DType::kF32);
  EXPECT_DEATH(cpu::matmul(c, a.view().slice(1, 0, 4), b), "matmul: a must be contiguous");
}

}  // namespace
}  // namespace plm
