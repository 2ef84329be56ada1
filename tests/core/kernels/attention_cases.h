// The attention test cases the blocked CPU forward and backward tests share: a shape, a mask kind, and seeded
// inputs with the options (causal, kv_lens, packed segment ids) that mask kind means.
#pragma once

#include <cstdint>
#include <string>

#include "core/kernels/kernel_types.h"
#include "core/tensor.h"

namespace plm::testing {

enum class AttentionMask { kFull, kCausal, kCausalKvLens, kSegments, kCausalSegments, kDecode, kChunkedPrefill };

struct AttentionCase {
  int64_t seq, num_q_heads, num_kv_heads, head_dim;  // seq: keys per sequence
  AttentionMask mask;
  int64_t batch = 2;

  // Queries per sequence: 1 for kDecode, a quarter of the keys for kChunkedPrefill, else seq.
  int64_t q_len() const;
  std::string name() const;  // "B2_S33_4q2kv_d64_causal"
};

// q (B, Sq, Hq, D) and k (B, Sk, Hkv, D) uniform in [-1.5, 1.5), v in [-1, 1), from seed, seed + 1, seed + 2.
// kv_lens (kCausalKvLens, kDecode, kChunkedPrefill): later sequences' caches part full, still holding their
// queries. segments (kSegments, kCausalSegments): documents of 1 to 40 tokens, ids not in order. `options`
// views kv_lens and segments, so it is valid while this object lives.
struct AttentionInputs {
  OwnedTensor q, k, v, kv_lens, segments;
  AttentionOptions options;
};
AttentionInputs make_attention_inputs(const AttentionCase& c, uint64_t seed);

}  // namespace plm::testing
