// The sizes, masks and argument checks shared by the CPU attention kernels (the reference loop and
// backward in attention.cc, the blocked forward in attention_blocked.cc, which also runs the paged forward),
// so every variant reads the contract of kernel_signatures.inc the same way. A paged call differs only in
// where rows live (packed queries, keys through a block table): the arithmetic per row is the dense one.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

#include "core/kernels/kernel_types.h"
#include "core/tensor.h"

namespace plm::cpu {

inline constexpr float kAttentionNegInf = -std::numeric_limits<float>::infinity();

// Sizes and masking inputs of one attention call, validated once. A paged call (paged_attention_forward)
// has query_starts and block_tables; q_len and kv_len are then the longest query run and the block tables'
// key capacity.
struct AttentionGeometry {
  int64_t batch, q_len, kv_len, num_q_heads, num_kv_heads, head_dim;
  float scale;
  bool causal;
  const int32_t* kv_lens;      // (B) or null
  const int32_t* segment_ids;  // (B, S) or null
  const int32_t* query_starts = nullptr;  // (B + 1) paged: sequence b's queries are rows [qs[b], qs[b + 1]) of q
  const int32_t* block_tables = nullptr;  // (B, max_blocks) paged: the blocks holding each sequence's keys
  int64_t max_blocks = 0, block_size = 0;

  int64_t group_size() const { return num_q_heads / num_kv_heads; }
  int64_t work() const { return batch * num_q_heads * q_len * kv_len * head_dim; }
  // Keys of sequence b in the cache: kv_lens[b], or Skv without kv_lens.
  int64_t valid_keys(int64_t b) const { return kv_lens ? kv_lens[b] : kv_len; }
  // Queries of sequence b: Sq, or its run of packed rows.
  int64_t query_len(int64_t b) const { return query_starts ? query_starts[b + 1] - query_starts[b] : q_len; }
  // Row offsets into q/out (B, Sq, Hq, Dh) or packed (T, Hq, Dh), and into k/v (B, Skv, Hkv, Dh) or the blocks
  // (num_blocks, block_size, Hkv, Dh).
  int64_t q_row(int64_t b, int64_t i, int64_t h) const {
    const int64_t row = query_starts ? query_starts[b] + i : b * q_len + i;
    return (row * num_q_heads + h) * head_dim;
  }
  int64_t kv_row(int64_t b, int64_t j, int64_t g) const {
    if (block_tables == nullptr) return ((b * kv_len + j) * num_kv_heads + g) * head_dim;
    const int64_t block = block_tables[b * max_blocks + j / block_size];
    return ((block * block_size + j % block_size) * num_kv_heads + g) * head_dim;
  }
  int64_t lse_index(int64_t b, int64_t h, int64_t i) const { return (b * num_q_heads + h) * q_len + i; }
};

// Queries [i0, i1) of sequence b with the query heads of kv_head: a block of the blocked forwards, its rows
// r = (i - i0) * G + (h - first head).
struct QueryBlock {
  int64_t b, kv_head, i0, i1;
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
  const int64_t position = valid - g.query_len(b) + i;
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
// The same for attention_backward: the forward's tensors with the lse it saved, and dq, dout, out shaped as q,
// dk, dv as k.
AttentionGeometry check_attention_backward(const char* op, Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q,
                                           Tensor k, Tensor v, Tensor out, Tensor lse,
                                           const AttentionOptions& options);
// The same for paged_attention_forward: q (T, Hq, Dh), the caches (num_blocks, block_size, Hkv, Dh), and
// every block id a sequence's keys use inside the pool.
AttentionGeometry check_paged_attention(const char* op, Tensor q, Tensor k_cache, Tensor v_cache,
                                        const PagedAttentionBatch& batch);

}  // namespace plm::cpu
