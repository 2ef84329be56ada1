// The bf16 compute mode's attention blocks (AttentionOptions::compute / PagedAttentionBatch::compute == kBF16), as
// PyTorch's CPU flash attention computes a bf16 SDPA: q, k, v rounded to bf16 (nearest even), scores q k^T from
// bf16 products with f32 sums (pair_gemm.h: vdpbf16ps, or the widened fallback), softmax statistics (row max, the
// sum of the unrounded exps, lse) in f32, the probabilities rounded to bf16 for p v, out = (p v) / sum in f32.
// Flash-style: a block of query rows walks its keys in blocks of kKeyBlock with an online softmax, so its scores
// stay in L2 at any context length. Run by attention_blocked.cc over the blocks of attention_geometry.h.
#pragma once

#include <cstdint>
#include <vector>

#include "core/kernels/cpu/attention_geometry.h"
#include "core/kernels/cpu/gemm_bf16.h"
#include "core/kernels/kernel_types.h"
#include "core/tensor.h"

namespace plm::cpu {

// The visible keys and values of every (sequence, kv head) of the blocked path, rounded to bf16 in pair_gemm's
// layouts: keys transposed for q k^T, values for p v, both zero-padded to multiples of kPairLanes (keys and head
// dim). The storage belongs to the calling thread and is kept for its next call (fresh buffers would page-fault).
class PackedPairs {
 public:
  explicit PackedPairs(const AttentionGeometry& g);
  PackedPairs(const PackedPairs&) = delete;
  PackedPairs& operator=(const PackedPairs&) = delete;

  // Packs the keys and values of (b, kv_head); KV is float (rounded) or bf16 (a bf16 cache, copied).
  template <typename KV>
  void pack(const KV* k, const KV* v, int64_t b, int64_t kv_head);

  int64_t padded_dim() const { return padded_dim_; }
  int64_t padded_keys(int64_t b) const { return padded_keys_[b]; }
  // (padded_dim / 2, 2 padded_keys) pair rows of k^T and (padded_keys / 2, 2 padded_dim) pair rows of v.
  const bf16* k(int64_t b, int64_t kv_head) const { return k_ + offset(b, kv_head); }
  const bf16* v(int64_t b, int64_t kv_head) const { return v_ + offset(b, kv_head); }

 private:
  int64_t offset(int64_t b, int64_t kv_head) const {
    return batch_offsets_[b] + kv_head * padded_keys_[b] * padded_dim_;
  }

  const AttentionGeometry& g_;
  int64_t padded_dim_;
  std::vector<int64_t> padded_keys_;    // (B) keys rounded up to kPairLanes; 0 for split-keys sequences
  std::vector<int64_t> batch_offsets_;  // (B) elements before sequence b's (kv head 0) pairs
  bf16* k_;
  bf16* v_;
};

// out and lse (null when not asked for) of the query rows of `block`, from q (f32, rounded here) and the packed
// keys and values.
void attend_block_bf16(const AttentionGeometry& g, const float* q, const PackedPairs& packed, const QueryBlock& block,
                       float* out, float* lse, Bf16InputKernel kernel);

// attention_forward (kernel_signatures.inc) in the bf16 compute mode with the GEMM kernel of the caller's choice
// (attention_forward takes kDotBf16 where the CPU has AVX512-BF16), so tests reach both; options.compute is ignored.
void attention_forward_bf16(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, const AttentionOptions& options,
                            Bf16InputKernel kernel);

}  // namespace plm::cpu
