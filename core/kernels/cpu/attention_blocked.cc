// The CPU attention forwards the model runs, dense (attention_forward) and paged (paged_attention_forward): per
// (sequence, kv head) and block of ~256 query rows (queries x the query heads sharing the kv head), one GEMM for
// the scores (sgemm.h), a vectorised row softmax (vector_kernels.h), one GEMM with the values; sequences with
// decode-sized blocks take the split-keys path (attention_split_keys.h). Both read rows through
// AttentionGeometry, so a paged sequence gets exactly the dense arithmetic. Same contract as
// kernel_signatures.inc, tested against the plain loop attention_forward_reference. A paged cache may be bf16
// (the bf16 compute mode's KV cache): its rows are widened exactly when packed or read. In the bf16 compute mode
// (options' compute kBF16) the blocks run attention_bf16.h's instead, on keys and values packed as bf16 pairs.
// OpenMP runs over blocks with single-threaded BLAS inside (see SerialBlasScope).
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/kernels/backends.h"
#include "core/kernels/cpu/attention_bf16.h"
#include "core/kernels/cpu/attention_split_keys.h"
#include "core/kernels/cpu/attention_geometry.h"
#include "core/kernels/cpu/vector_kernels.h"
#include "core/kernels/cpu/checks.h"
#include "core/kernels/cpu/gemm_bf16.h"
#include "core/kernels/cpu/parallel.h"
#include "core/kernels/cpu/serial_blas.h"
#include "core/kernels/cpu/sgemm.h"

namespace plm::cpu {

namespace {

// Query rows per block: the M of both GEMMs. Measured on the vision (1025 tokens, 16 heads x 64) and causal
// prefill (1024 and 4096 tokens, 32q/8kv x 64) cases, 2 threads: 128-512 within 3%, 64 and 1024 5-15% slower.
constexpr int64_t kBlockRows = 256;

// The visible keys and values of every (sequence, kv head) of the GEMM path as contiguous (kv_lens[b], Dh)
// matrices, the GEMMs' operands. The buffers belong to the calling thread and are kept for its next call (fresh ones
// would page-fault every call), so they hold the largest k and v seen.
class PackedKv {
 public:
  explicit PackedKv(const AttentionGeometry& g) : g_(g) {
    thread_local std::vector<float> k_storage, v_storage;
    batch_offsets_.resize(static_cast<size_t>(g.batch));
    int64_t size = 0;
    for (int64_t b = 0; b < g.batch; ++b) {
      batch_offsets_[b] = size;
      if (!takes_split_keys(g, b)) size += g.valid_keys(b) * g.num_kv_heads * g.head_dim;
    }
    k_storage.resize(static_cast<size_t>(size));
    v_storage.resize(static_cast<size_t>(size));
    k_ = k_storage.data();
    v_ = v_storage.data();
  }
  template <typename KV>  // float or bf16
  void pack(const KV* k, const KV* v, int64_t b, int64_t kv_head) {
    const int64_t offset = this->offset(b, kv_head);
    const auto widened = [](KV x) { return static_cast<float>(x); };
    for (int64_t j = 0; j < g_.valid_keys(b); ++j) {
      const KV* k_row = k + g_.kv_row(b, j, kv_head);
      const KV* v_row = v + g_.kv_row(b, j, kv_head);
      std::transform(k_row, k_row + g_.head_dim, k_ + offset + j * g_.head_dim, widened);
      std::transform(v_row, v_row + g_.head_dim, v_ + offset + j * g_.head_dim, widened);
    }
  }
  const float* k(int64_t b, int64_t kv_head) const { return k_ + offset(b, kv_head); }
  const float* v(int64_t b, int64_t kv_head) const { return v_ + offset(b, kv_head); }

 private:
  int64_t offset(int64_t b, int64_t kv_head) const {
    return batch_offsets_[b] + kv_head * g_.valid_keys(b) * g_.head_dim;
  }
  const AttentionGeometry& g_;
  std::vector<int64_t> batch_offsets_;
  float* k_;
  float* v_;
};

// The inputs every block reads.
struct AttentionInputs {
  const AttentionGeometry& g;
  const VectorKernels& simd;
  const float* q;
  const PackedKv& packed;
  float* out;
  float* lse;  // null when not asked for
};

// Per-thread buffers, reused across calls (fresh ones would page-fault every call).
struct BlockScratch {
  std::vector<float> q;       // (R, Dh) the block's query rows
  std::vector<float> scores;  // (R, n) scaled scores, then unnormalised probabilities
  std::vector<float> out;     // (R, Dh) probabilities . values
  std::vector<float> maxes;   // (R) row max; -inf for a row that sees no key
  std::vector<float> sums;    // (R) softmax denominators
};

// scores (R, n) = scale q k^T, out (R, Dh) = p v: one GEMM each on the packed keys and values.
void scores_by_gemm(const AttentionInputs& in, const QueryBlock& blk, int64_t rows, int64_t n, BlockScratch& s) {
  sgemm({.a = s.q.data(), .b = in.packed.k(blk.b, blk.kv_head), .c = s.scores.data(), .m = rows, .n = n,
         .k = in.g.head_dim, .trans_a = false, .trans_b = true, .alpha = in.g.scale, .beta = 0.0f, .ldc = n});
}

void values_by_gemm(const AttentionInputs& in, const QueryBlock& blk, int64_t rows, int64_t n, BlockScratch& s) {
  sgemm({.a = s.scores.data(), .b = in.packed.v(blk.b, blk.kv_head), .c = s.out.data(), .m = rows, .n = in.g.head_dim,
         .k = n, .trans_a = false, .trans_b = false, .alpha = 1.0f, .beta = 0.0f, .ldc = in.g.head_dim});
}

// Turns the scores of query i into exp(s - max) over its visible keys and 0 over the rest of [0, n).
void softmax_row(const AttentionGeometry& g, const VectorKernels& simd, int64_t b, int64_t i, int64_t n,
                 float* scores, float& max_out, float& sum_out) {
  const VisibleKeys keys = visible_keys(g, b, i);
  if (keys.segments) {
    for (int64_t j = 0; j < keys.end; ++j) {
      if (!keys.contains(j)) scores[j] = kAttentionNegInf;
    }
  }
  max_out = simd.row_max(scores, keys.end);
  if (max_out == kAttentionNegInf) {  // no visible key
    std::fill_n(scores, n, 0.0f);
    return;
  }
  sum_out = simd.exp_sum(scores, keys.end, max_out);
  std::fill(scores + keys.end, scores + n, 0.0f);
}

void attend_block(const AttentionInputs& in, const QueryBlock& blk, BlockScratch& s) {
  const AttentionGeometry& g = in.g;
  const int64_t group = g.group_size(), dim = g.head_dim, rows = (blk.i1 - blk.i0) * group;
  // The block's last query sees the most keys (causal ends grow with i).
  const int64_t n = visible_keys(g, blk.b, blk.i1 - 1).end;
  s.scores.resize(static_cast<size_t>(rows * n));
  s.out.resize(static_cast<size_t>(rows * dim));
  s.maxes.resize(static_cast<size_t>(rows));
  s.sums.resize(static_cast<size_t>(rows));
  s.q.resize(static_cast<size_t>(rows * dim));
  for (int64_t i = blk.i0; i < blk.i1; ++i) {
    std::copy_n(in.q + g.q_row(blk.b, i, blk.kv_head * group), group * dim, s.q.data() + (i - blk.i0) * group * dim);
  }
  if (n > 0) scores_by_gemm(in, blk, rows, n, s);
  for (int64_t r = 0; r < rows; ++r) {
    softmax_row(g, in.simd, blk.b, blk.i0 + r / group, n, s.scores.data() + r * n, s.maxes[r], s.sums[r]);
  }
  if (n > 0) values_by_gemm(in, blk, rows, n, s);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t i = blk.i0 + r / group, h = blk.kv_head * group + r % group;
    const bool sees_keys = s.maxes[r] != kAttentionNegInf;
    const float* row = s.out.data() + r * dim;
    float* out_row = in.out + g.q_row(blk.b, i, h);
    for (int64_t d = 0; d < dim; ++d) out_row[d] = sees_keys ? row[d] / s.sums[r] : 0.0f;
    if (in.lse) in.lse[g.lse_index(blk.b, h, i)] = sees_keys ? s.maxes[r] + std::log(s.sums[r]) : kAttentionNegInf;
  }
}

// Every (sequence, kv head) of the GEMM path split into equal blocks of at most kBlockRows rows.
std::vector<QueryBlock> make_blocks(const AttentionGeometry& g) {
  const int64_t max_queries = std::max<int64_t>(1, kBlockRows / g.group_size());
  std::vector<QueryBlock> blocks;
  for (int64_t b = 0; b < g.batch; ++b) {
    if (takes_split_keys(g, b)) continue;
    const int64_t q_len = g.query_len(b);
    const int64_t blocks_per_head = (q_len + max_queries - 1) / max_queries;
    const int64_t block_queries = (q_len + blocks_per_head - 1) / blocks_per_head;
    for (int64_t kv_head = 0; kv_head < g.num_kv_heads; ++kv_head) {
      for (int64_t i0 = 0; i0 < q_len; i0 += block_queries) {
        blocks.push_back({b, kv_head, i0, std::min(i0 + block_queries, q_len)});
      }
    }
  }
  return blocks;
}

// Packs every (sequence, kv head) of the blocked path, then runs attend_one over the blocks, on OpenMP threads.
template <typename Packed, typename KV, typename AttendOne>
void run_blocks(const AttentionGeometry& g, const std::vector<QueryBlock>& blocks, Packed& packed, const KV* k,
                const KV* v, const AttendOne& attend_one) {
  const SerialBlasScope serial_blas;
#pragma omp parallel if (g.work() >= kMinParallelWork)
  {
#pragma omp for collapse(2)
    for (int64_t b = 0; b < g.batch; ++b) {
      for (int64_t kv_head = 0; kv_head < g.num_kv_heads; ++kv_head) {
        if (!takes_split_keys(g, b)) packed.pack(k, v, b, kv_head);
      }
    }
#pragma omp for schedule(dynamic)
    for (size_t t = 0; t < blocks.size(); ++t) attend_one(blocks[t]);
  }
}

// The forward of every entry point on checked inputs; KV is float or bf16. kernel: the bf16 mode's GEMMs.
template <typename KV>
void attend(const AttentionGeometry& g, const float* q, const KV* k, const KV* v, float* out, float* lse,
            DType compute, Bf16InputKernel kernel) {
  PLM_CHECK(compute == DType::kF32 || compute == DType::kBF16)
      << "CPU attention computes in f32 or bf16, not " << dtype_name(compute);
  attention_forward_split_keys(g, q, k, v, out, lse, compute);
  const std::vector<QueryBlock> blocks = make_blocks(g);
  if (blocks.empty()) return;
  if (compute == DType::kBF16) {
    PackedPairs packed(g);
    run_blocks(g, blocks, packed, k, v,
               [&](const QueryBlock& blk) { attend_block_bf16(g, q, packed, blk, out, lse, kernel); });
    return;
  }
  PackedKv packed(g);
  const AttentionInputs in{
      .g = g, .simd = vector_kernels(best_simd_isa()), .q = q, .packed = packed, .out = out, .lse = lse};
  run_blocks(g, blocks, packed, k, v, [&](const QueryBlock& blk) {
    thread_local BlockScratch scratch;
    attend_block(in, blk, scratch);
  });
}

Bf16InputKernel best_bf16_kernel() {
  return cpu_has_avx512_bf16() ? Bf16InputKernel::kDotBf16 : Bf16InputKernel::kWidened;
}

}  // namespace

void attention_forward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, const AttentionOptions& options, Stream) {
  const AttentionGeometry g = check_attention("attention_forward", q, k, v, lse, options);
  check_f32("attention_forward", "out", out, q.shape());
  if (out.numel() == 0) return;
  attend(g, q.data_as<float>(), k.data_as<float>(), v.data_as<float>(), out.data_as<float>(),
         lse.defined() ? lse.data_as<float>() : nullptr, options.compute, best_bf16_kernel());
}

void attention_forward_bf16(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, const AttentionOptions& options,
                            Bf16InputKernel kernel) {
  const AttentionGeometry g = check_attention("attention_forward_bf16", q, k, v, lse, options);
  check_f32("attention_forward_bf16", "out", out, q.shape());
  if (out.numel() == 0) return;
  attend(g, q.data_as<float>(), k.data_as<float>(), v.data_as<float>(), out.data_as<float>(),
         lse.defined() ? lse.data_as<float>() : nullptr, DType::kBF16, kernel);
}

void paged_attention_forward(Tensor out, Tensor q, Tensor k_cache, Tensor v_cache, const PagedAttentionBatch& batch,
                             Stream) {
  const AttentionGeometry g = check_paged_attention("paged_attention_forward", q, k_cache, v_cache, batch);
  check_f32("paged_attention_forward", "out", out, q.shape());
  if (k_cache.dtype() == DType::kBF16) {
    attend(g, q.data_as<float>(), k_cache.data_as<bf16>(), v_cache.data_as<bf16>(), out.data_as<float>(), nullptr,
           batch.compute, best_bf16_kernel());
  } else {
    attend(g, q.data_as<float>(), k_cache.data_as<float>(), v_cache.data_as<float>(), out.data_as<float>(), nullptr,
           batch.compute, best_bf16_kernel());
  }
}

void paged_kv_write(Tensor k_cache, Tensor v_cache, Tensor k, Tensor v, Tensor slots, Stream) {
  constexpr const char* kOp = "paged_kv_write";
  PLM_CHECK(k_cache.defined() && (k_cache.dtype() == DType::kF32 || k_cache.dtype() == DType::kBF16))
      << kOp << ": k_cache must be f32 or bf16, got " << k_cache.describe();
  check_tensor(kOp, "k_cache", k_cache, k_cache.dtype());
  check_tensor(kOp, "v_cache", v_cache, k_cache.dtype());
  check_shape(kOp, "v_cache", v_cache, k_cache.shape());
  check_rank(kOp, "k_cache", k_cache, 4);
  const int64_t tokens = k.size(0), row = k_cache.size(2) * k_cache.size(3);
  const int64_t num_rows = k_cache.size(0) * k_cache.size(1);
  check_f32(kOp, "k", k, {tokens, k_cache.size(2), k_cache.size(3)});
  check_f32(kOp, "v", v, k.shape());
  check_tensor(kOp, "slots", slots, DType::kI32);
  check_shape(kOp, "slots", slots, {tokens});
  const int32_t* slot = slots.data_as<int32_t>();
  for (int64_t t = 0; t < tokens; ++t) {
    PLM_CHECK(0 <= slot[t] && slot[t] < num_rows)
        << kOp << ": slots[" << t << "] = " << slot[t] << " outside the cache's " << num_rows << " rows";
  }
  for (int64_t t = 0; t < tokens; ++t) {
    const float* k_row = k.data_as<float>() + t * row;
    const float* v_row = v.data_as<float>() + t * row;
    if (k_cache.dtype() == DType::kBF16) {  // rounded to nearest even
      round_to_bf16(k_row, k_cache.data_as<bf16>() + slot[t] * row, row);
      round_to_bf16(v_row, v_cache.data_as<bf16>() + slot[t] * row, row);
    } else {
      std::copy_n(k_row, row, k_cache.data_as<float>() + slot[t] * row);
      std::copy_n(v_row, row, v_cache.data_as<float>() + slot[t] * row);
    }
  }
}

}  // namespace plm::cpu
