// The blocked CPU attention backward (attention_backward.cc) against the plain loop attention_backward_reference
// over shapes around the block size, GQA ratios, odd head dims, causal and full masks, kv_lens, chunked prefill,
// packed segments and queries that see no key, with both threadings (threads over (sequence, kv head) tasks,
// and tasks in turn with threaded GEMMs). The double reference and finite differences are in attention_test.cc.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "core/kernels/backends.h"
#include "core/kernels/cpu/attention_reference.h"
#include "tests/core/kernels/attention_cases.h"
#include "tests/core/test_util.h"

namespace plm {
namespace {

using Mask = testing::AttentionMask;
using Case = testing::AttentionCase;

// max |a - b| / max(1, max |b|) over one gradient: the inputs are O(1), and a gradient that cancels to ~0 (a
// query with one key has dS = P (dP - dO . O) = 0 up to rounding) is judged absolutely.
double relative_error(Tensor actual, Tensor expected) {
  const std::vector<float> a = testing::to_vector(actual), e = testing::to_vector(expected);
  double max_error = 0.0, max_expected = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    max_error = std::max(max_error, std::abs(static_cast<double>(a[i]) - e[i]));
    max_expected = std::max(max_expected, std::abs(static_cast<double>(e[i])));
  }
  return max_error / std::max(max_expected, 1.0);
}

// Runs the blocked forward, then both backwards on seeded inputs of case c; returns the largest relative error
// of dq, dk and dv.
double compare_with_reference(const Case& c, uint64_t seed) {
  const testing::AttentionInputs in = testing::make_attention_inputs(c, seed);
  const Tensor q = in.q, k = in.k, v = in.v;
  const AttentionOptions& options = in.options;
  const int64_t q_len = c.q_len();
  OwnedTensor dout = testing::random_tensor(q.shape(), seed + 3);
  OwnedTensor out(q.shape(), DType::kF32), lse({c.batch, c.num_q_heads, q_len}, DType::kF32);
  cpu::attention_forward(out, lse, q, k, v, options);
  // Both start as garbage: the gradients are written, not accumulated.
  OwnedTensor dq = testing::random_tensor(q.shape(), seed + 4), dk = testing::random_tensor(k.shape(), seed + 5);
  OwnedTensor dv = testing::random_tensor(k.shape(), seed + 6);
  OwnedTensor ref_dq = testing::random_tensor(q.shape(), seed + 7), ref_dk = testing::random_tensor(k.shape(), seed + 8);
  OwnedTensor ref_dv = testing::random_tensor(k.shape(), seed + 9);
  cpu::attention_backward(dq, dk, dv, dout, q, k, v, out, lse, options);
  cpu::attention_backward_reference(ref_dq, ref_dk, ref_dv, dout, q, k, v, out, lse, options);
  return std::max({relative_error(dq, ref_dq), relative_error(dk, ref_dk), relative_error(dv, ref_dv)});
}

TEST(CpuAttentionBackward, MatchesReferenceOverShapesAndMasks) {
  const std::vector<std::pair<int64_t, int64_t>> head_layouts = {{2, 2}, {4, 2}, {4, 1}};
  const std::vector<Mask> masks = {Mask::kFull,     Mask::kCausal,         Mask::kCausalKvLens,
                                   Mask::kSegments, Mask::kCausalSegments, Mask::kChunkedPrefill};
  std::vector<Case> cases;
  for (const int64_t seq : {1, 5, 17, 63, 65, 300}) {
    for (const auto& [hq, hkv] : head_layouts) {
      for (const int64_t dim : {5, 64}) {
        for (const Mask mask : masks) cases.push_back({seq, hq, hkv, dim, mask});
      }
    }
  }
  // One sequence with one kv head: a single task, whose GEMMs are threaded instead. A vision tile (1025 tokens,
  // full) and a causal sequence of 3 blocks with GQA 4.
  cases.push_back({300, 4, 1, 64, Mask::kCausal, 1});
  cases.push_back({1025, 2, 2, 64, Mask::kFull, 1});
  cases.push_back({700, 8, 2, 64, Mask::kCausal, 1});

  double worst = 0.0;
  uint64_t seed = 2000;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name());
    const double error = compare_with_reference(c, seed += 10);
    EXPECT_LE(error, 4e-6) << "max |grad - ref| / max(1, max |ref|)";
    worst = std::max(worst, error);
  }
  std::ostringstream formatted;
  formatted << std::scientific << worst;
  RecordProperty("max_grad_error_relative", formatted.str());
  std::printf("%zu cases: max |grad - ref| / max(1, max |ref grad|) = %.2e\n", cases.size(), worst);
}

TEST(CpuAttentionBackward, QueriesThatSeeNoKeyGetZeroGradients) {
  // Sequence 0 has no keys; in sequence 1 (kv_len 3 < Sq 17, causal) the first 14 queries sit before the first key.
  OwnedTensor q = testing::random_tensor({2, 17, 4, 8}, 1), k = testing::random_tensor({2, 20, 2, 8}, 2);
  OwnedTensor v = testing::random_tensor(k.shape(), 3), dout = testing::random_tensor(q.shape(), 4);
  OwnedTensor kv_lens = testing::tensor_from({2}, std::vector<int32_t>{0, 3});
  const AttentionOptions options{.causal = true, .kv_lens = kv_lens};
  OwnedTensor out(q.shape(), DType::kF32), lse({2, 4, 17}, DType::kF32);
  cpu::attention_forward(out, lse, q, k, v, options);
  OwnedTensor dq = testing::random_tensor(q.shape(), 5), dk = testing::random_tensor(k.shape(), 6);
  OwnedTensor dv = testing::random_tensor(k.shape(), 7);
  cpu::attention_backward(dq, dk, dv, dout, q, k, v, out, lse, options);
  const std::vector<float> gq = testing::to_vector(dq), gk = testing::to_vector(dk), gv = testing::to_vector(dv);
  for (int64_t i = 0; i < 17 * 4 * 8; ++i) EXPECT_EQ(gq[i], 0.0f) << "sequence 0, dq " << i;
  for (int64_t i = 0; i < 14 * 4 * 8; ++i) EXPECT_EQ(gq[17 * 4 * 8 + i], 0.0f) << "sequence 1, dq " << i;
  for (int64_t i = 0; i < 20 * 2 * 8; ++i) {
    EXPECT_EQ(gk[i], 0.0f) << "sequence 0, dk " << i;
    EXPECT_EQ(gv[i], 0.0f) << "sequence 0, dv " << i;
  }
  for (int64_t i = 3 * 2 * 8; i < 20 * 2 * 8; ++i) {  // keys past kv_lens[1]
    EXPECT_EQ(gk[20 * 2 * 8 + i], 0.0f) << "sequence 1, dk " << i;
    EXPECT_EQ(gv[20 * 2 * 8 + i], 0.0f) << "sequence 1, dv " << i;
  }
}

}  // namespace
}  // namespace plm
