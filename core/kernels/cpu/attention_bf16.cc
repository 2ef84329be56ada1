// The bf16 attention blocks of attention_bf16.h. Per block of R query rows: q rounded into (R, Dh'), then per key
// block scores (R, W) = scale q k^T (pair_gemm), the online softmax per row (max m, sum l of exp(s - m) in f32,
// acc rescaled by exp(m_old - m) when the max grows), p = bf16(exp(s - m)), acc (R, Dh') += p v (pair_gemm);
// finally out = acc / l and lse = m + log l. Dh' and W are padded to kPairLanes with zero keys and dims.
#include "core/kernels/cpu/attention_bf16.h"

#include <algorithm>
#include <cmath>

#include "core/kernels/cpu/attention_split_keys.h"
#include "core/kernels/cpu/pair_gemm.h"
#include "core/kernels/cpu/vector_kernels.h"

namespace plm::cpu {

namespace {

// Keys per online-softmax step: a block's scores (256 rows x 256 keys, 256 KiB f32) and probabilities (128 KiB)
// stay in L2 next to the block's queries and accumulators. PyTorch's CPU flash attention takes 512.
constexpr int64_t kKeyBlock = 256;

int64_t round_up(int64_t x, int64_t multiple) { return (x + multiple - 1) / multiple * multiple; }

// Per-thread buffers, reused across calls (fresh ones would page-fault every call).
struct Scratch {
  std::vector<bf16> q;       // (R, Dh') the block's query rows, rounded
  std::vector<float> acc;    // (R, Dh') sum of p v
  std::vector<float> scores; // (R, W) scaled scores
  std::vector<bf16> p;       // (R, W) exp(s - m), rounded
  std::vector<float> maxes;  // (R) running max; -inf while the row has seen no key
  std::vector<float> sums;   // (R) running sum of exp(s - max)
};

// One key block [j0, j0 + width) of row r (query i): masks what i does not see, updates the row's max and sum,
// rescales its accumulator, and leaves p = bf16(exp(s - max)) over the visible keys and 0 elsewhere in
// [0, padded_width).
void softmax_step(const AttentionGeometry& g, const VectorKernels& simd, int64_t b, int64_t i, int64_t j0,
                  int64_t width, int64_t padded_width, float* scores, bf16* p, float* acc, int64_t padded_dim,
                  float& max, float& sum) {
  const VisibleKeys keys = visible_keys(g, b, i);
  const int64_t end = std::clamp<int64_t>(keys.end - j0, 0, width);
  if (keys.segments) {
    for (int64_t j = 0; j < end; ++j) {
      if (!keys.contains(j0 + j)) scores[j] = kAttentionNegInf;
    }
  }
  const float new_max = std::max(max, simd.row_max(scores, end));
  if (new_max == kAttentionNegInf) {  // no visible key yet
    std::fill_n(p, padded_width, bf16());
    return;
  }
  const float correction = std::exp(max - new_max);  // 0 while the row had no key (max -inf)
  sum = sum * correction + simd.exp_sum_bf16(scores, end, new_max, p);
  std::fill(p + end, p + padded_width, bf16());
  if (correction != 1.0f) {
    for (int64_t d = 0; d < padded_dim; ++d) acc[d] *= correction;
  }
  max = new_max;
}

}  // namespace

PackedPairs::PackedPairs(const AttentionGeometry& g)
    : g_(g), padded_dim_(round_up(g.head_dim, kPairLanes)), padded_keys_(static_cast<size_t>(g.batch), 0) {
  thread_local std::vector<bf16> k_storage, v_storage;
  batch_offsets_.resize(static_cast<size_t>(g.batch));
  int64_t size = 0;
  for (int64_t b = 0; b < g.batch; ++b) {
    batch_offsets_[b] = size;
    if (!takes_split_keys(g, b)) padded_keys_[b] = round_up(g.valid_keys(b), kPairLanes);
    size += g.num_kv_heads * padded_keys_[b] * padded_dim_;
  }
  k_storage.resize(static_cast<size_t>(size));
  v_storage.resize(static_cast<size_t>(size));
  k_ = k_storage.data();
  v_ = v_storage.data();
}

template <typename KV>
void PackedPairs::pack(const KV* k, const KV* v, int64_t b, int64_t kv_head) {
  const int64_t keys = g_.valid_keys(b), dim = g_.head_dim;
  const auto key_row = [&](int64_t j) { return k + g_.kv_row(b, j, kv_head); };
  const auto value_row = [&](int64_t j) { return v + g_.kv_row(b, j, kv_head); };
  pack_pairs_transposed<KV>(key_row, keys, dim, padded_keys_[b], padded_dim_, k_ + offset(b, kv_head));
  pack_pairs<KV>(value_row, keys, dim, padded_keys_[b], padded_dim_, v_ + offset(b, kv_head));
}

template void PackedPairs::pack(const float* k, const float* v, int64_t b, int64_t kv_head);
template void PackedPairs::pack(const bf16* k, const bf16* v, int64_t b, int64_t kv_head);

void attend_block_bf16(const AttentionGeometry& g, const float* q, const PackedPairs& packed, const QueryBlock& block,
                       float* out, float* lse, Bf16InputKernel kernel) {
  const VectorKernels& simd = vector_kernels(best_simd_isa());
  const int64_t group = g.group_size(), dim = g.head_dim, padded_dim = packed.padded_dim();
  const int64_t rows = (block.i1 - block.i0) * group, b = block.b;
  // The block's last query sees the most keys (causal ends grow with i).
  const int64_t n = visible_keys(g, b, block.i1 - 1).end;
  const int64_t max_width = std::min(kKeyBlock, round_up(n, kPairLanes));
  thread_local Scratch s;
  s.q.assign(static_cast<size_t>(rows * padded_dim), bf16());
  s.acc.assign(static_cast<size_t>(rows * padded_dim), 0.0f);
  s.scores.resize(static_cast<size_t>(rows * max_width));
  s.p.resize(s.scores.size());
  s.maxes.assign(static_cast<size_t>(rows), kAttentionNegInf);
  s.sums.assign(static_cast<size_t>(rows), 0.0f);
  const auto q_row_of = [&](int64_t r) {  // row r: query i0 + r / group, head kv_head * group + r % group
    return q + g.q_row(b, block.i0 + r / group, block.kv_head * group + r % group);
  };
  for (int64_t r = 0; r < rows; ++r) {
    if (r + kPrefetchRows < rows) prefetch_row(q_row_of(r + kPrefetchRows), dim);
    const float* q_row = q_row_of(r);
    round_to_bf16_serial(q_row, s.q.data() + r * padded_dim, dim);
  }
  const bf16* k = packed.k(b, block.kv_head);
  const bf16* v = packed.v(b, block.kv_head);
  const int64_t ldk = 2 * packed.padded_keys(b);
  for (int64_t j0 = 0; j0 < n; j0 += kKeyBlock) {
    const int64_t width = std::min(kKeyBlock, n - j0), padded_width = round_up(width, kPairLanes);
    pair_gemm({.a = s.q.data(), .b = k + 2 * j0, .c = s.scores.data(), .m = rows, .n = padded_width,
               .k = padded_dim, .lda = padded_dim, .ldb = ldk, .ldc = padded_width, .alpha = g.scale,
               .accumulate = false},
              kernel);
    for (int64_t r = 0; r < rows; ++r) {
      softmax_step(g, simd, b, block.i0 + r / group, j0, width, padded_width, s.scores.data() + r * padded_width,
                   s.p.data() + r * padded_width, s.acc.data() + r * padded_dim, padded_dim, s.maxes[r], s.sums[r]);
    }
    // Pair row j0 / 2 of v (j0 is a multiple of kKeyBlock, so even).
    pair_gemm({.a = s.p.data(), .b = v + j0 * padded_dim, .c = s.acc.data(), .m = rows, .n = padded_dim,
               .k = padded_width, .lda = padded_width, .ldb = 2 * padded_dim, .ldc = padded_dim, .alpha = 1.0f,
               .accumulate = true},
              kernel);
  }
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t i = block.i0 + r / group, h = block.kv_head * group + r % group;
    const bool sees_keys = s.maxes[r] != kAttentionNegInf;
    const float* acc = s.acc.data() + r * padded_dim;
    float* out_row = out + g.q_row(b, i, h);
    for (int64_t d = 0; d < dim; ++d) out_row[d] = sees_keys ? acc[d] / s.sums[r] : 0.0f;
    if (lse) lse[g.lse_index(b, h, i)] = sees_keys ? s.maxes[r] + std::log(s.sums[r]) : kAttentionNegInf;
  }
}

}  // namespace plm::cpu
