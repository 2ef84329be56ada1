// CPU attention against a naive double reference over GQA ratios, causal masks, kv_lens (chunked prefill and
// decode), packed segments and queries that see no key: the forward of both the reference loop and the
// blocked kernel; backward, blocked and the reference loop (from the blocked forward's saved lse), against the
// double analytic gradient, and the blocked one against central finite differences.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/kernels/backends.h"
#include "core/kernels/cpu/attention_reference.h"
#include "tests/core/kernels/reference_check.h"
#include "tests/core/test_util.h"

namespace plm {
namespace {

using testing::random_ids;
using testing::random_tensor;
using testing::tensor_from;

struct AttentionCase {
  std::string name;
  int64_t batch, q_len, kv_len, num_q_heads, num_kv_heads, head_dim;
  bool causal;
  std::vector<int32_t> kv_lens;      // empty: every sequence has kv_len keys
  std::vector<int32_t> segment_ids;  // empty: no packing; else (B, S)
  float scale = 0.0f;
};

void PrintTo(const AttentionCase& c, std::ostream* os) { *os << c.name; }  // gtest's listing: no raw bytes

struct Inputs {
  OwnedTensor q, k, v, kv_lens, segment_ids;
  AttentionOptions options;
};

Inputs make_inputs(const AttentionCase& c, uint64_t seed) {
  Inputs in{random_tensor({c.batch, c.q_len, c.num_q_heads, c.head_dim}, seed, -1.5f, 1.5f),
            random_tensor({c.batch, c.kv_len, c.num_kv_heads, c.head_dim}, seed + 1, -1.5f, 1.5f),
            random_tensor({c.batch, c.kv_len, c.num_kv_heads, c.head_dim}, seed + 2),
            {},
            {},
            {}};
  in.options.causal = c.causal;
  in.options.scale = c.scale;
  if (!c.kv_lens.empty()) {
    in.kv_lens = tensor_from({c.batch}, c.kv_lens);
    in.options.kv_lens = in.kv_lens;
  }
  if (!c.segment_ids.empty()) {
    in.segment_ids = tensor_from({c.batch, c.q_len}, c.segment_ids);
    in.options.segment_ids = in.segment_ids;
  }
  return in;
}

// Double reference: probabilities P (B, Hq, Sq, Skv) with 0 for hidden keys, out, lse and the gradients.
struct Reference {
  std::vector<double> probs, out, lse, dq, dk, dv;
};

Reference reference(const AttentionCase& c, const Inputs& in, Tensor dout) {
  const float* q = in.q.data_as<float>();
  const float* k = in.k.data_as<float>();
  const float* v = in.v.data_as<float>();
  const float* dy = dout.data_as<float>();
  const int64_t group = c.num_q_heads / c.num_kv_heads, dim = c.head_dim;
  const double scale = c.scale != 0.0f ? c.scale : 1.0 / std::sqrt(static_cast<double>(dim));
  auto q_at = [&](int64_t b, int64_t i, int64_t h) { return ((b * c.q_len + i) * c.num_q_heads + h) * dim; };
  auto kv_at = [&](int64_t b, int64_t j, int64_t g) { return ((b * c.kv_len + j) * c.num_kv_heads + g) * dim; };
  Reference r;
  r.probs.assign(static_cast<size_t>(c.batch * c.num_q_heads * c.q_len * c.kv_len), 0.0);
  r.out.assign(static_cast<size_t>(in.q.numel()), 0.0);
  r.dq.assign(r.out.size(), 0.0);
  r.dk.assign(static_cast<size_t>(in.k.numel()), 0.0);
  r.dv.assign(r.dk.size(), 0.0);
  r.lse.assign(static_cast<size_t>(c.batch * c.num_q_heads * c.q_len), -std::numeric_limits<double>::infinity());
  for (int64_t b = 0; b < c.batch; ++b) {
    const int64_t valid = c.kv_lens.empty() ? c.kv_len : c.kv_lens[b];
    for (int64_t h = 0; h < c.num_q_heads; ++h) {
      const int64_t g = h / group;
      for (int64_t i = 0; i < c.q_len; ++i) {
        const int64_t position = valid - c.q_len + i;
        std::vector<double> s(static_cast<size_t>(c.kv_len));
        std::vector<bool> seen(static_cast<size_t>(c.kv_len), false);
        double max_s = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < valid; ++j) {
          if (c.causal && j > position) continue;
          if (!c.segment_ids.empty() && c.segment_ids[b * c.q_len + i] != c.segment_ids[b * c.kv_len + j]) continue;
          seen[j] = true;
          s[j] = 0.0;
          for (int64_t d = 0; d < dim; ++d) s[j] += static_cast<double>(q[q_at(b, i, h) + d]) * k[kv_at(b, j, g) + d];
          s[j] *= scale;
          max_s = std::max(max_s, s[j]);
        }
        if (max_s == -std::numeric_limits<double>::infinity()) continue;
        double sum = 0.0;
        for (int64_t j = 0; j < c.kv_len; ++j) sum += seen[j] ? std::exp(s[j] - max_s) : 0.0;
        const int64_t row = (b * c.num_q_heads + h) * c.q_len + i;
        r.lse[row] = max_s + std::log(sum);
        double* p = r.probs.data() + row * c.kv_len;
        for (int64_t j = 0; j < c.kv_len; ++j) p[j] = seen[j] ? std::exp(s[j] - r.lse[row]) : 0.0;
        for (int64_t j = 0; j < c.kv_len; ++j) {
          for (int64_t d = 0; d < dim; ++d) r.out[q_at(b, i, h) + d] += p[j] * v[kv_at(b, j, g) + d];
        }
        // dS_j = P_j (dout . v_j - dout . out); dq = scale sum dS_j k_j; dk_j += scale dS_j q; dv_j += P_j dout.
        double delta = 0.0;
        for (int64_t d = 0; d < dim; ++d) delta += dy[q_at(b, i, h) + d] * r.out[q_at(b, i, h) + d];
        for (int64_t j = 0; j < c.kv_len; ++j) {
          double dp = 0.0;
          for (int64_t d = 0; d < dim; ++d) dp += static_cast<double>(dy[q_at(b, i, h) + d]) * v[kv_at(b, j, g) + d];
          const double ds = p[j] * (dp - delta);
          for (int64_t d = 0; d < dim; ++d) {
            r.dq[q_at(b, i, h) + d] += scale * ds * k[kv_at(b, j, g) + d];
            r.dk[kv_at(b, j, g) + d] += scale * ds * q[q_at(b, i, h) + d];
            r.dv[kv_at(b, j, g) + d] += p[j] * dy[q_at(b, i, h) + d];
          }
        }
      }
    }
  }
  return r;
}

const std::vector<AttentionCase>& cases() {
  static const std::vector<AttentionCase> all = {
      {"causal_mha_s5", 2, 5, 5, 4, 4, 8, true, {}, {}},
      {"bidirectional_gqa2_s17_odd_dim", 2, 17, 17, 4, 2, 5, false, {}, {}},
      {"single_token", 1, 1, 1, 2, 1, 4, true, {}, {}},
      {"decode_gqa4_kv_lens", 2, 1, 17, 4, 1, 16, true, {9, 17}, {}},
      {"chunked_prefill_kv_lens", 2, 5, 17, 4, 2, 6, true, {12, 5}, {}},
      {"segments_bidirectional", 2, 17, 17, 4, 2, 8, false, {}, {0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2,
                                                                 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
      {"segments_causal_gqa4", 1, 17, 17, 4, 1, 4, true, {}, {3, 3, 3, 3, 3, 3, 7, 7, 7, 7, 7, 7, 7, 7, 1, 1, 1}},
      {"explicit_scale", 1, 5, 5, 2, 2, 8, false, {}, {}, 0.3f},
      // Large enough for the OpenMP path: dk/dv of a kv head collect its query heads on one thread.
      {"threaded_gqa2_causal_kv_lens", 2, 32, 32, 4, 2, 16, true, {32, 27}, {}},
      // kv_lens 0: the sequence sees nothing. kv_len 2 < Sq 5 with causal: the first 3 queries see nothing.
      {"no_visible_key", 2, 5, 5, 2, 1, 4, true, {0, 2}, {}},
  };
  return all;
}

class CpuAttention : public ::testing::TestWithParam<AttentionCase> {};

TEST_P(CpuAttention, ForwardAndBackwardMatchDoubleReference) {
  const AttentionCase& c = GetParam();
  Inputs in = make_inputs(c, 100);
  OwnedTensor dout = random_tensor(in.q.shape(), 104);
  const Reference r = reference(c, in, dout);

  OwnedTensor out(in.q.shape(), DType::kF32), lse({c.batch, c.num_q_heads, c.q_len}, DType::kF32);
  const auto check_forward = [&](const std::string& label) {
    SCOPED_TRACE(label);
    EXPECT_TRUE(testing::close_to_reference(out, r.out, 2e-6, 0.0, c.name + "_out" + label));
    const std::vector<float> lse_values = testing::to_vector(lse);
    for (size_t i = 0; i < lse_values.size(); ++i) {
      if (std::isinf(r.lse[i])) {
        EXPECT_EQ(lse_values[i], -std::numeric_limits<float>::infinity()) << "row " << i;
      } else {
        EXPECT_NEAR(lse_values[i], r.lse[i], 2e-6) << "row " << i;
      }
    }
  };
  cpu::attention_forward_reference(out, lse, in.q, in.k, in.v, in.options);
  check_forward("_reference");
  cpu::attention_forward(out, lse, in.q, in.k, in.v, in.options);
  check_forward("");

  // Gradients start as garbage: they are written, not accumulated.
  for (const bool blocked : {true, false}) {
    const std::string label = blocked ? "" : "_reference";
    SCOPED_TRACE(label);
    OwnedTensor dq = random_tensor(in.q.shape(), 7), dk = random_tensor(in.k.shape(), 8),
                dv = random_tensor(in.k.shape(), 9);
    if (blocked) {
      cpu::attention_backward(dq, dk, dv, dout, in.q, in.k, in.v, out, lse, in.options);
    } else {
      cpu::attention_backward_reference(dq, dk, dv, dout, in.q, in.k, in.v, out, lse, in.options);
    }
    EXPECT_TRUE(testing::close_to_reference(dq, r.dq, 4e-6, 0.0, c.name + "_dq" + label));
    EXPECT_TRUE(testing::close_to_reference(dk, r.dk, 4e-6, 0.0, c.name + "_dk" + label));
    EXPECT_TRUE(testing::close_to_reference(dv, r.dv, 4e-6, 0.0, c.name + "_dv" + label));
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, CpuAttention, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<AttentionCase>& info) { return info.param.name; });

TEST(CpuAttentionGrad, MatchesFiniteDifferences) {
  // Causal + segments + GQA 2 on a tiny shape: loss = sum(out * probe).
  const AttentionCase c{"fd", 1, 5, 5, 2, 1, 4, true, {}, {0, 0, 1, 1, 1}};
  Inputs in = make_inputs(c, 200);
  OwnedTensor probe = random_tensor(in.q.shape(), 204);
  OwnedTensor out(in.q.shape(), DType::kF32), lse({1, 2, 5}, DType::kF32);
  const auto loss = [&] {
    cpu::attention_forward(out, lse, in.q, in.k, in.v, in.options);
    return testing::dot(out, probe);
  };
  OwnedTensor dq(in.q.shape(), DType::kF32), dk(in.k.shape(), DType::kF32), dv(in.k.shape(), DType::kF32);
  loss();
  cpu::attention_backward(dq, dk, dv, probe, in.q, in.k, in.v, out, lse, in.options);
  EXPECT_TRUE(testing::close_to_reference(dq, testing::finite_difference(in.q, loss, 1e-2f), 1e-4, 0.0, "fd_dq"));
  EXPECT_TRUE(testing::close_to_reference(dk, testing::finite_difference(in.k, loss, 1e-2f), 1e-4, 0.0, "fd_dk"));
  EXPECT_TRUE(testing::close_to_reference(dv, testing::finite_difference(in.v, loss, 1e-2f), 1e-4, 0.0, "fd_dv"));
}

TEST(CpuAttentionMask, FullyMaskedQueriesGetZeroOutput) {
  const AttentionCase& c = cases().back();
  Inputs in = make_inputs(c, 300);
  OwnedTensor out = random_tensor(in.q.shape(), 301), lse({2, 2, 5}, DType::kF32);
  cpu::attention_forward(out, lse, in.q, in.k, in.v, in.options);
  const std::vector<float> o = testing::to_vector(out);
  for (int64_t i = 0; i < 5 * 2 * 4; ++i) EXPECT_EQ(o[i], 0.0f) << "sequence 0 has no keys";
  // Sequence 1: kv_len 2, Sq 5: queries 0..2 sit at positions -3..-1.
  for (int64_t i = 0; i < 3 * 2 * 4; ++i) EXPECT_EQ(o[5 * 2 * 4 + i], 0.0f);
  EXPECT_EQ(lse.data_as<float>()[10], -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isfinite(lse.data_as<float>()[13]));
}

}  // namespace
}  // namespace plm
