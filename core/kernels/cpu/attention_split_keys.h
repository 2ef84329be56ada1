// The CPU attention forward for sequences with too few query rows for GEMMs (decode: one or a few queries per
// sequence): split over chunks of keys, each reading the keys and values of every head contiguously, with the
// partial softmaxes merged at the end. Called by the forwards of attention_blocked.cc on checked inputs.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/kernels/cpu/attention_geometry.h"

namespace plm::cpu {

// Below this many rows per (sequence, kv head) (queries x query heads per kv head), the blocked path's GEMMs
// would mostly pack operands: such sequences take the split-keys path.
inline constexpr int64_t kMinGemmRows = 8;

inline bool takes_split_keys(const AttentionGeometry& g, int64_t b) {
  return g.query_len(b) * g.group_size() < kMinGemmRows;
}

// out (B, Sq, Hq, Dh) or packed, and lse (B, Hq, Sq) or null, from q, k, v as in kernel_signatures.inc, for
// the sequences that take_split_keys; the other sequences' rows are left as they are.
// k and v f32, or bf16 (a bf16 KV cache, widened exactly). compute kBF16 (the bf16 compute mode, as
// attention_bf16.h): q and k rounded to bf16 for the scores, the probabilities rounded for p v.
void attention_forward_split_keys(const AttentionGeometry& g, const float* q, const float* k, const float* v,
                                  float* out, float* lse, DType compute);
void attention_forward_split_keys(const AttentionGeometry& g, const float* q, const bf16* k, const bf16* v,
                                  float* out, float* lse, DType compute);

}  // namespace plm::cpu
