// The bf16 compute mode's CPU attention (attention_forward with compute kBF16: the blocks of attention_bf16.h and
// the split-keys path for decode-sized sequences) with each GEMM kernel (vdpbf16ps, skipped where the CPU lacks
// AVX512-BF16; the widened fallback, which runs everywhere) on odd shapes (1, 7, 33, 1025 queries, head dims
// 64 / 80 / 128, GQA, full / causal / kv_lens / segments / decode), against
// - a double reference on the bf16-rounded q, k, v: only the rounding of the probabilities for p v and f32
//   sums separate them (|p - bf16(p)| <= 2^-9 p bounds the out error by 2^-9 max |v|);
// - the f32 oracle (attention_forward_reference on the unrounded inputs), within bf16 noise.
// Also: paged_attention_forward with compute kBF16 on a bf16 cache equals the dense bf16 forward bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "core/kernels/backends.h"
#include "core/kernels/cpu/attention_bf16.h"
#include "core/kernels/cpu/attention_geometry.h"
#include "core/kernels/cpu/attention_reference.h"
#include "tests/core/test_util.h"

namespace plm {
namespace {

using cpu::Bf16InputKernel;

enum class Mask { kFull, kCausal, kCausalKvLens, kSegments, kDecode };

struct Case {
  int64_t seq, num_q_heads, num_kv_heads, head_dim;
  Mask mask;
  int64_t batch = 2;

  std::string name() const {
    std::ostringstream os;
    os << "S" << seq << "_" << num_q_heads << "q" << num_kv_heads << "kv_d" << head_dim << "_mask"
       << static_cast<int>(mask);
    return os.str();
  }
};

std::vector<float> rounded(const std::vector<float>& x) {
  std::vector<float> out(x.size());
  std::transform(x.begin(), x.end(), out.begin(), [](float v) { return static_cast<float>(bf16(v)); });
  return out;
}

struct Inputs {
  OwnedTensor q, k, v, kv_lens, segments;
  AttentionOptions options;
  int64_t q_len;
};

Inputs make_inputs(const Case& c, uint64_t seed) {
  Inputs in;
  in.q_len = c.mask == Mask::kDecode ? 1 : c.seq;
  in.q = testing::random_tensor({c.batch, in.q_len, c.num_q_heads, c.head_dim}, seed, -1.5f, 1.5f);
  in.k = testing::random_tensor({c.batch, c.seq, c.num_kv_heads, c.head_dim}, seed + 1, -1.5f, 1.5f);
  in.v = testing::random_tensor({c.batch, c.seq, c.num_kv_heads, c.head_dim}, seed + 2);
  in.options.causal = c.mask != Mask::kFull && c.mask != Mask::kSegments;
  if (c.mask == Mask::kCausalKvLens || c.mask == Mask::kDecode) {
    std::vector<int32_t> lens;
    for (int64_t b = 0; b < c.batch; ++b) lens.push_back(static_cast<int32_t>(std::max(in.q_len, c.seq >> b)));
    in.kv_lens = testing::tensor_from({c.batch}, lens);
    in.options.kv_lens = in.kv_lens;
  }
  if (c.mask == Mask::kSegments) {
    std::vector<int32_t> ids;
    for (int64_t b = 0; b < c.batch; ++b) {
      for (int64_t j = 0; j < c.seq; ++j) ids.push_back(static_cast<int32_t>((j * 3 + b) / 11 % 4));
    }
    in.segments = testing::tensor_from({c.batch, c.seq}, ids);
    in.options.segment_ids = in.segments;
  }
  return in;
}

// out and lse in double from q, k, v as given (the caller rounds them).
void reference_double(const cpu::AttentionGeometry& g, const std::vector<float>& q, const std::vector<float>& k,
                      const std::vector<float>& v, std::vector<double>& out, std::vector<double>& lse) {
  out.assign(q.size(), 0.0);
  lse.assign(static_cast<size_t>(g.batch * g.num_q_heads * g.q_len), -INFINITY);
  std::vector<double> scores(static_cast<size_t>(g.kv_len));
  for (int64_t b = 0; b < g.batch; ++b) {
    for (int64_t h = 0; h < g.num_q_heads; ++h) {
      const int64_t kv_head = h / g.group_size();
      for (int64_t i = 0; i < g.q_len; ++i) {
        const cpu::VisibleKeys keys = cpu::visible_keys(g, b, i);
        double max = -INFINITY;
        for (int64_t j = 0; j < keys.end; ++j) {
          if (!keys.contains(j)) continue;
          double dot = 0.0;
          for (int64_t d = 0; d < g.head_dim; ++d) {
            dot += static_cast<double>(q[g.q_row(b, i, h) + d]) * k[g.kv_row(b, j, kv_head) + d];
          }
          scores[j] = g.scale * dot;
          max = std::max(max, scores[j]);
        }
        if (max == -INFINITY) continue;
        double sum = 0.0;
        for (int64_t j = 0; j < keys.end; ++j) {
          if (!keys.contains(j)) continue;
          const double p = std::exp(scores[j] - max);
          sum += p;
          for (int64_t d = 0; d < g.head_dim; ++d) out[g.q_row(b, i, h) + d] += p * v[g.kv_row(b, j, kv_head) + d];
        }
        for (int64_t d = 0; d < g.head_dim; ++d) out[g.q_row(b, i, h) + d] /= sum;
        lse[g.lse_index(b, h, i)] = max + std::log(sum);
      }
    }
  }
}

class AttentionBf16Test : public ::testing::TestWithParam<Bf16InputKernel> {
 protected:
  void SetUp() override {
    if (GetParam() == Bf16InputKernel::kDotBf16 && !cpu::cpu_has_avx512_bf16()) {
      GTEST_SKIP() << "this CPU has no AVX512-BF16";
    }
  }
};

std::vector<Case> cases() {
  std::vector<Case> all;
  for (const int64_t seq : {1, 7, 33}) {
    for (const int64_t dim : {64, 80, 128}) {
      for (const Mask mask : {Mask::kFull, Mask::kCausal, Mask::kCausalKvLens, Mask::kSegments, Mask::kDecode}) {
        all.push_back({seq, 4, 1, dim, mask});
        all.push_back({seq, 2, 2, dim, mask});
      }
    }
  }
  // A vision tile (full, 16 heads in PLM; 2 here: the reference is slow) and a causal prefill past a key block.
  all.push_back({1025, 2, 2, 64, Mask::kFull, 1});
  all.push_back({1025, 1, 1, 80, Mask::kSegments, 1});
  all.push_back({1025, 4, 1, 128, Mask::kCausal, 1});
  all.push_back({1025, 4, 1, 64, Mask::kDecode, 1});
  return all;
}

TEST_P(AttentionBf16Test, MatchesDoubleReferenceAndF32OracleOnOddShapes) {
  double worst_double = 0.0, worst_oracle = 0.0, worst_lse = 0.0;
  uint64_t seed = 7000;
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name());
    const Inputs in = make_inputs(c, seed += 10);
    const Shape lse_shape{c.batch, c.num_q_heads, in.q_len};
    OwnedTensor out(in.q.shape(), DType::kF32), lse(lse_shape, DType::kF32);
    cpu::attention_forward_bf16(out, lse, in.q, in.k, in.v, in.options, GetParam());
    OwnedTensor oracle(in.q.shape(), DType::kF32), oracle_lse(lse_shape, DType::kF32);
    cpu::attention_forward_reference(oracle, oracle_lse, in.q, in.k, in.v, in.options);

    const cpu::AttentionGeometry g = cpu::check_attention("test", in.q, in.k, in.v, lse, in.options);
    const std::vector<float> v = testing::to_vector(in.v);
    std::vector<double> ref, ref_lse;
    reference_double(g, rounded(testing::to_vector(in.q)), rounded(testing::to_vector(in.k)), rounded(v), ref,
                     ref_lse);
    double max_v = 0.0;
    for (const float x : v) max_v = std::max(max_v, std::abs(static_cast<double>(x)));
    const std::vector<float> o = testing::to_vector(out), l = testing::to_vector(lse);
    const std::vector<float> oo = testing::to_vector(oracle);
    double vs_double = 0.0, vs_oracle = 0.0, lse_error = 0.0;
    for (size_t i = 0; i < o.size(); ++i) {
      vs_double = std::max(vs_double, std::abs(o[i] - ref[i]) / max_v);
      vs_oracle = std::max(vs_oracle, std::abs(static_cast<double>(o[i]) - oo[i]) / max_v);
    }
    for (size_t i = 0; i < l.size(); ++i) {
      if (std::isinf(ref_lse[i])) {
        EXPECT_EQ(l[i], -INFINITY) << "lse row " << i;
      } else {
        lse_error = std::max(lse_error, std::abs(l[i] - ref_lse[i]) / std::max(1.0, std::abs(ref_lse[i])));
      }
    }
    // 2^-9 from the rounded probabilities (see the file comment) plus f32 sums.
    EXPECT_LE(vs_double, 2e-3) << "out error relative to max |v|, against double on rounded inputs";
    EXPECT_LE(lse_error, 2e-6) << "lse relative error against double on rounded inputs";
    // bf16 noise: rounding q, k (scores move by ~2^-8 |q| |k| / sqrt(Dh)), v and p.
    EXPECT_LE(vs_oracle, 2e-2) << "out error relative to max |v|, against the f32 oracle";
    worst_double = std::max(worst_double, vs_double);
    worst_oracle = std::max(worst_oracle, vs_oracle);
    worst_lse = std::max(worst_lse, lse_error);
  }
  RecordProperty("max_out_error_vs_double_over_max_v", std::to_string(worst_double));
  RecordProperty("max_out_error_vs_f32_oracle_over_max_v", std::to_string(worst_oracle));
  RecordProperty("max_lse_relative_error_vs_double", std::to_string(worst_lse));
  std::printf("max |out - double| / max |v| = %.2e, max |out - f32 oracle| / max |v| = %.2e, lse %.2e\n",
              worst_double, worst_oracle, worst_lse);
}

INSTANTIATE_TEST_SUITE_P(EveryKernel, AttentionBf16Test,
                         ::testing::Values(Bf16InputKernel::kDotBf16, Bf16InputKernel::kWidened),
                         [](const ::testing::TestParamInfo<Bf16InputKernel>& info) {
                           return info.param == Bf16InputKernel::kDotBf16 ? "DotBf16" : "Widened";
                         });

// One sequence of 70 queries (the blocked path) and one of 1 (split keys) over a bf16 cache of blocks of 16,
// against the dense bf16 forward on the same (rounded) keys laid out densely.
TEST(PagedAttentionBf16Test, EqualsTheDenseBf16ForwardBitForBit) {
  const int64_t heads = 4, kv_heads = 1, dim = 80, block = 16, keys = 70;
  const int64_t blocks_per_seq = (keys + block - 1) / block;
  for (const int64_t q_len : {keys, int64_t{1}}) {
    SCOPED_TRACE(q_len);
    const OwnedTensor q = testing::random_tensor({1, q_len, heads, dim}, 1, -1.5f, 1.5f);
    const std::vector<float> k = rounded(testing::to_vector(testing::random_tensor({1, keys, kv_heads, dim}, 2)));
    const std::vector<float> v = rounded(testing::to_vector(testing::random_tensor({1, keys, kv_heads, dim}, 3)));
    // Blocks in reverse order in the pool.
    OwnedTensor k_cache({blocks_per_seq, block, kv_heads, dim}, DType::kBF16);
    OwnedTensor v_cache(k_cache.shape(), DType::kBF16);
    std::vector<int32_t> table;
    for (int64_t t = 0; t < blocks_per_seq; ++t) table.push_back(static_cast<int32_t>(blocks_per_seq - 1 - t));
    for (int64_t j = 0; j < keys; ++j) {
      const int64_t row = (table[j / block] * block + j % block) * kv_heads * dim;
      for (int64_t d = 0; d < kv_heads * dim; ++d) {
        k_cache.data_as<bf16>()[row + d] = bf16(k[j * kv_heads * dim + d]);
        v_cache.data_as<bf16>()[row + d] = bf16(v[j * kv_heads * dim + d]);
      }
    }
    const OwnedTensor tables = testing::tensor_from({1, blocks_per_seq}, table);
    const OwnedTensor starts = testing::tensor_from({2}, std::vector<int32_t>{0, static_cast<int32_t>(q_len)});
    const OwnedTensor lens = testing::tensor_from({1}, std::vector<int32_t>{static_cast<int32_t>(keys)});
    OwnedTensor paged({q_len, heads, dim}, DType::kF32);
    cpu::paged_attention_forward(paged, q.view().reshape({q_len, heads, dim}), k_cache, v_cache,
                                 {.block_tables = tables, .query_starts = starts, .kv_lens = lens,
                                  .max_query_len = q_len, .compute = DType::kBF16});
    OwnedTensor dense(q.shape(), DType::kF32);
    cpu::attention_forward(dense, Tensor(), q, testing::tensor_from({1, keys, kv_heads, dim}, k),
                           testing::tensor_from({1, keys, kv_heads, dim}, v),
                           {.causal = true, .kv_lens = lens, .compute = DType::kBF16});
    EXPECT_EQ(testing::max_abs_diff(paged.view().reshape(dense.shape()), dense), 0.0f);
  }
}

}  // namespace
}  // namespace plm
