// The sizes, masks and argument checks shared by the CPU attention kernels (the reference loop and
// backward in attention.cc, the blocked forward in attention_blocked.cc), so every variant reads the
// contract of kernel_signatures.inc the same way.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

#include "core/kernels/kernel_types.h"
#include "core/tensor.h"

namespace plm::cpu {

inline constexpr float kAttentionNegInf = -std::numeric_limits<float>::infinity();

// Sizes and masking inputs of one attention call, validated once.
struct AttentionGeometry {
  int64_t batch, q_len, kv_len, num_q_heads, num_kv_heads, head_dim;
  float scale;
  bool causal;
  const int32_t* kv_lens;      // (B) or null
  const int32_t* segment_ids;  // (B, S) or null

  int64_t group_size() const { return num_q_heads / num_kv_heads; }
  int64_t work() const { return batch * num_q_heads * q_len * kv_len * head_dim; }
  // Keys of sequence b in the cache: kv_lens[b], or Skv without kv_lens.
  int64_t valid_keys(int64_t b) const { return kv_lens ? kv_lens[b] : kv_len; }
  // Row offsets into q/out (B, Sq, Hq, Dh) and k/v (B, Skv, Hkv, Dh).
  int64_t q_row(int64_t b, int64_t i, int64_t h) const { return ((b * q_len + i) * num_q_heads + h) * head_dim; }
  int64_t kv_row(int64_t b, int64_t j, int64_t g) const { return ((b * kv_len + j) * num_kv_heads + g) * head_dim; }
  int64_t lse_index(int64_t b, int64_t h, int64_t i) const { return (b * num_q_heads + h) * q_len + i; }
};

// The keys query i of sequence b sees: j in [0, end), and with packed documents only its own segment.
struct VisibleKeys {
  int64_t end;
  const int32_t* segments;  // (S) of sequence b, or null
  int32_t segment;

  bool contains(int64_t j) const { return segments == nullptr || segments[j] == segment; }
};

inline VisibleKeys visible_keys(const AttentionGeometry& g, int64_t b, int64_t i) {
  const int64_t valid = g.valid_keys(b);
  const int64_t position = valid - g.q_len + i;
  VisibleKeys keys{valid, nullptr, 0};
  if (g.causal) keys.end = std::clamp<int64_t>(position + 1, 0, valid);
  if (g.segment_ids) {
    keys.segments = g.segment_ids + b * g.kv_len;
    keys.segment = g.segment_ids[b * g.q_len + i];
  }
  return keys;
}

// Checks q, k, v (and lse when defined) against the contract; resolves scale 0 to 1/sqrt(Dh).
AttentionGeometry check_attention(const char* op, Tensor q, Tensor k, Tensor v, Tensor lse,
                                  const AttentionOptions& options);

}  // namespace plm::cpu
