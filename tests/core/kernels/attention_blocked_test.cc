// The blocked CPU attention forward (GEMM blocks and the split-keys decode path) against the plain loop
// attention_forward_reference over shapes around the block sizes, GQA ratios, head dims, causal masks,
// kv_lens, packed segments and queries that see no key; and the vector exp, row max and dot kernels of every
// ISA this CPU runs against std::exp and plain loops.
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <iomanip>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "core/kernels/backends.h"
#include "core/kernels/cpu/attention_reference.h"
#include "core/kernels/cpu/vector_kernels.h"
#include "tests/core/kernels/attention_cases.h"
#include "tests/core/kernels/simd_isas.h"
#include "tests/core/test_util.h"

namespace plm {
namespace {

using cpu::SimdIsa;
using testing::runnable_isas;

constexpr float kInf = std::numeric_limits<float>::infinity();

using Mask = testing::AttentionMask;
using Case = testing::AttentionCase;

// Differences between the blocked and the reference forward. out is a convex combination of value rows,
// so its rounding scales with max |v|, not with max |out| (which shrinks as keys average out); an lse near
// 10 has ulps of 1e-6.
struct Errors {
  double out_vs_values = 0.0;  // max |out - ref| / max |v|
  double out_vs_out = 0.0;     // max |out - ref| / max |ref|
  double lse = 0.0;            // max |lse - ref| / max(1, |ref|)
};

// Runs both forwards on seeded inputs of case c and returns the largest differences.
Errors compare_with_reference(const Case& c, uint64_t seed) {
  const testing::AttentionInputs in = testing::make_attention_inputs(c, seed);
  const Tensor q = in.q, k = in.k, v = in.v;
  const AttentionOptions& options = in.options;
  const int64_t q_len = c.q_len();
  OwnedTensor out(q.shape(), DType::kF32), lse({c.batch, c.num_q_heads, q_len}, DType::kF32);
  OwnedTensor ref_out(q.shape(), DType::kF32), ref_lse({c.batch, c.num_q_heads, q_len}, DType::kF32);
  cpu::attention_forward(out, lse, q, k, v, options);
  cpu::attention_forward_reference(ref_out, ref_lse, q, k, v, options);

  const std::vector<float> o = testing::to_vector(out), ro = testing::to_vector(ref_out);
  const std::vector<float> l = testing::to_vector(lse), rl = testing::to_vector(ref_lse);
  const std::vector<float> values = testing::to_vector(v);
  double max_out = 0.0, max_value = 0.0, max_error = 0.0;
  for (const float x : values) max_value = std::max(max_value, std::abs(static_cast<double>(x)));
  for (size_t i = 0; i < o.size(); ++i) {
    max_out = std::max(max_out, std::abs(static_cast<double>(ro[i])));
    max_error = std::max(max_error, std::abs(static_cast<double>(o[i]) - ro[i]));
  }
  Errors e{.out_vs_values = max_error / max_value, .out_vs_out = max_error / std::max(max_out, 1e-30)};
  for (size_t i = 0; i < l.size(); ++i) {
    if (std::isinf(rl[i])) {  // a row that sees no key: out 0 and lse -inf exactly
      EXPECT_EQ(l[i], -kInf) << "lse row " << i;
    } else {
      e.lse = std::max(e.lse, std::abs(static_cast<double>(l[i]) - rl[i]) / std::max(1.0f, std::abs(rl[i])));
    }
  }
  return e;
}

std::string scientific(double x) {
  std::ostringstream os;
  os << std::scientific << std::setprecision(2) << x;
  return os.str();
}

TEST(CpuAttentionBlocked, MatchesReferenceOverShapesAndMasks) {
  const std::vector<std::pair<int64_t, int64_t>> head_layouts = {{2, 2}, {4, 2}, {4, 1}};
  const std::vector<Mask> masks = {Mask::kFull,           Mask::kCausal, Mask::kCausalKvLens,  Mask::kSegments,
                                   Mask::kCausalSegments, Mask::kDecode, Mask::kChunkedPrefill};
  std::vector<Case> cases;
  for (const int64_t seq : {1, 5, 17, 63, 64, 65, 300}) {
    for (const auto& [hq, hkv] : head_layouts) {
      for (const int64_t dim : {8, 64, 96}) {
        for (const Mask mask : masks) cases.push_back({seq, hq, hkv, dim, mask});
      }
    }
  }
  // 1025 tokens (a vision tile) with a lighter sweep: the reference is slow.
  for (const Mask mask : masks) cases.push_back({1025, 4, mask == Mask::kFull ? 4 : 1, 64, mask, 1});
  cases.push_back({1025, 2, 2, 96, Mask::kFull, 1});

  Errors worst;
  uint64_t seed = 1000;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name());
    const Errors e = compare_with_reference(c, seed += 10);
    EXPECT_LE(e.out_vs_values, 1e-6) << "out error relative to max |v|";
    EXPECT_LE(e.lse, 1e-6) << "lse error relative to max(1, |lse|)";
    worst.out_vs_values = std::max(worst.out_vs_values, e.out_vs_values);
    worst.out_vs_out = std::max(worst.out_vs_out, e.out_vs_out);
    worst.lse = std::max(worst.lse, e.lse);
  }
  RecordProperty("cases", static_cast<int>(cases.size()));
  RecordProperty("max_out_error_over_max_v", scientific(worst.out_vs_values));
  RecordProperty("max_out_error_over_max_out", scientific(worst.out_vs_out));
  RecordProperty("max_lse_error_relative", scientific(worst.lse));
  std::printf("%zu cases: max |out - ref| / max |v| = %.2e (/ max |ref out| = %.2e), "
              "max |lse - ref| / max(1, |ref lse|) = %.2e\n",
              cases.size(), worst.out_vs_values, worst.out_vs_out, worst.lse);
}

TEST(CpuAttentionBlocked, QueriesThatSeeNoKeyGetZeroAndMinusInf) {
  // GEMM path (17 queries x 2 heads per kv head) and split-keys path (1 query): sequence 0 has no keys; in
  // sequence 1 (kv_len 3 < Sq 17, causal) the first 14 queries sit before the first key.
  for (const int64_t q_len : {17, 1}) {
    OwnedTensor q = testing::random_tensor({2, q_len, 4, 8}, 1), kv = testing::random_tensor({2, 20, 2, 8}, 2);
    OwnedTensor kv_lens = testing::tensor_from({2}, std::vector<int32_t>{0, q_len == 1 ? 1 : 3});
    OwnedTensor out = testing::random_tensor(q.shape(), 3), lse = testing::random_tensor({2, 4, q_len}, 4);
    cpu::attention_forward(out, lse, q, kv, kv, {.causal = true, .kv_lens = kv_lens});
    const std::vector<float> o = testing::to_vector(out), l = testing::to_vector(lse);
    for (int64_t i = 0; i < q_len * 4 * 8; ++i) EXPECT_EQ(o[i], 0.0f) << "Sq " << q_len << " sequence 0";
    for (int64_t h = 0; h < 4; ++h) {
      for (int64_t i = 0; i < q_len; ++i) {
        EXPECT_EQ(l[h * q_len + i], -kInf);
        const bool sees = i >= q_len - 3 || q_len == 1;
        EXPECT_EQ(std::isfinite(l[(4 + h) * q_len + i]), sees) << "Sq " << q_len << " sequence 1 query " << i;
        for (int64_t d = 0; d < 8 && !sees; ++d) EXPECT_EQ(o[((q_len + i) * 4 + h) * 8 + d], 0.0f);
      }
    }
  }
}

TEST(CpuAttentionBlocked, LseOptional) {
  OwnedTensor q = testing::random_tensor({1, 70, 4, 16}, 5), kv = testing::random_tensor({1, 70, 1, 16}, 6);
  OwnedTensor with(q.shape(), DType::kF32), without(q.shape(), DType::kF32), lse({1, 4, 70}, DType::kF32);
  cpu::attention_forward(with, lse, q, kv, kv, {.causal = true});
  cpu::attention_forward(without, Tensor(), q, kv, kv, {.causal = true});
  EXPECT_EQ(testing::max_abs_diff(with, without), 0.0f);
}

TEST(CpuVectorKernels, ExpMatchesStdExp) {
  // Steps of 1/1024 over the range with normal results, an odd count for the tails.
  std::vector<float> inputs;
  for (double x = -87.3; x <= 88.3; x += 1.0 / 1024) inputs.push_back(static_cast<float>(x));
  inputs.push_back(0.0f);
  inputs.push_back(-0.0f);
  inputs.push_back(1e-30f);
  for (const SimdIsa isa : runnable_isas()) {
    SCOPED_TRACE(cpu::simd_isa_name(isa));
    const cpu::VectorKernels& simd = cpu::vector_kernels(isa);
    std::vector<float> y = inputs;
    simd.exp_sum(y.data(), static_cast<int64_t>(y.size()), 0.0f);
    double max_relative = 0.0;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const double expected = std::exp(static_cast<double>(inputs[i]));
      max_relative = std::max(max_relative, std::abs(y[i] - expected) / expected);
    }
    EXPECT_LE(max_relative, 2e-7);
    RecordProperty(std::string("exp_max_relative_error_") + cpu::simd_isa_name(isa), scientific(max_relative));
    std::printf("%s: exp max relative error %.3e over [-87.3, 88.3]\n", cpu::simd_isa_name(isa), max_relative);

    // The sum as the softmax uses it: exp(x - shift) over scores below the shift.
    std::vector<float> scores(1001);
    double expected_sum = 0.0;
    for (size_t j = 0; j < scores.size(); ++j) {
      scores[j] = static_cast<float>(j % 97) * 0.25f - 20.0f;
      expected_sum += std::exp(static_cast<double>(scores[j]) - 4.0);
    }
    const float sum = simd.exp_sum(scores.data(), static_cast<int64_t>(scores.size()), 4.0f);
    EXPECT_NEAR(sum, expected_sum, 1e-6 * expected_sum);
  }
}

TEST(CpuVectorKernels, ExpEdgesGiveZeroInfOrNaNNeverGarbage) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (const SimdIsa isa : runnable_isas()) {
    SCOPED_TRACE(cpu::simd_isa_name(isa));
    const cpu::VectorKernels& simd = cpu::vector_kernels(isa);
    // Very negative inputs (all a masked score can be) give 0 or a subnormal (scalar), never NaN.
    std::vector<float> y = {-kInf, -FLT_MAX, -1e30f, -1000.0f, -104.0f, -88.0f, -87.5f};
    const float sum = simd.exp_sum(y.data(), static_cast<int64_t>(y.size()), 0.0f);
    for (const float e : y) EXPECT_TRUE(e >= 0.0f && e < FLT_MIN) << e;
    EXPECT_TRUE(sum >= 0.0f && sum < 2 * FLT_MIN) << sum;
    EXPECT_EQ(y[0], 0.0f);
    // Overflow gives +inf; NaN stays NaN.
    y = {89.0f, 1000.0f, kInf, nan};
    simd.exp_sum(y.data(), 4, 0.0f);
    EXPECT_EQ(y[0], kInf) << "exp(89) exceeds FLT_MAX";
    EXPECT_EQ(y[1], kInf);
    EXPECT_EQ(y[2], kInf);
    EXPECT_TRUE(std::isnan(y[3]));
    // x - max as in the softmax, with -inf for a masked key.
    y = {3.0f, -kInf, 1.0f, 3.0f};
    EXPECT_NEAR(simd.exp_sum(y.data(), 4, 3.0f), 2.0 + std::exp(-2.0), 1e-6);
    EXPECT_EQ(y[1], 0.0f);
  }
}

TEST(CpuVectorKernels, RowMaxAndDotMatchLoopsAtEveryTail) {
  for (const SimdIsa isa : runnable_isas()) {
    SCOPED_TRACE(cpu::simd_isa_name(isa));
    const cpu::VectorKernels& simd = cpu::vector_kernels(isa);
    for (int64_t n = 0; n <= 70; ++n) {
      OwnedTensor a = testing::random_tensor({n + 1}, 10 + n, -3.0f, 3.0f), b = testing::random_tensor({n + 1}, 90 + n);
      const std::vector<float> x = testing::to_vector(a), w = testing::to_vector(b);
      float expected_max = -kInf;
      double expected_dot = 0.0, magnitude = 0.0;
      for (int64_t j = 0; j < n; ++j) {
        expected_max = std::max(expected_max, x[j]);
        expected_dot += static_cast<double>(x[j]) * w[j];
        magnitude += std::abs(static_cast<double>(x[j]) * w[j]);
      }
      EXPECT_EQ(simd.row_max(x.data(), n), expected_max) << "n " << n;
      EXPECT_NEAR(simd.dot(x.data(), w.data(), n), expected_dot, 1e-6 * magnitude + 1e-30) << "n " << n;
    }
  }
}

}  // namespace
}  // namespace plm
