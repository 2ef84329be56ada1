// Pieces shared by the CUDA attention kernels (attention_forward.cu, attention_backward.cu,
// attention_reference.cu): argument checks, the visibility rule of kernel_signatures.inc, index maps, and
// the tile loader. Internal to core/kernels/cuda/. Rows of a "query block" are (query, head) pairs of one
// kv head flattened as r = i * group + (h - kv_head * group), so the query heads sharing a kv head share
// its key tiles (GQA). The paged forward (attention_forward.cu) runs the same kernels on packed queries with
// keys read through block tables: only the index maps differ.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/kernels/kernel_types.h"
#include "core/tensor.h"

namespace plm::cuda::attention_internal {

constexpr int kMaxHeadDim = 128;
constexpr int kWarpSize = 32;
constexpr unsigned kFullMask = 0xffffffffu;

// Sizes and options of one call, as the kernels take them. Pointers are device pointers.
struct AttentionParams {
  int batch, q_len, kv_len_max;  // B, Sq, Skv
  int num_q_heads, num_kv_heads, group, head_dim;  // Hq, Hkv, Hq / Hkv, Dh
  float scale;
  bool causal;
  const int32_t* kv_lens;      // (B) or null
  const int32_t* segment_ids;  // (B, S) or null
  // Paged calls: q_len is the longest query run and kv_len_max = max_blocks * block_size.
  const int32_t* query_starts;  // (B + 1) or null: sequence b's queries are packed rows [qs[b], qs[b + 1])
  const int32_t* block_tables;  // (B, max_blocks) or null: key j of b is row j % block_size of its block j / block_size
  int max_blocks, block_size;
};

// Checks q (B, Sq, Hq, Dh), k and v (B, Skv, Hkv, Dh) and the options against the contract (dtype f32
// or bf16, Dh a multiple of 8 up to 128, 16-byte aligned data) and returns the kernel parameters.
AttentionParams check_attention(const char* op, Tensor q, Tensor k, Tensor v, const AttentionOptions& options);
// The same for paged_attention_forward: q (T, Hq, Dh), the caches (num_blocks, block_size, Hkv, Dh) and the
// batch's i32 tensors. Block ids are device data: the kernels trust them.
AttentionParams check_paged_attention(const char* op, Tensor q, Tensor k_cache, Tensor v_cache,
                                      const PagedAttentionBatch& batch);
// Checks that t (named name) has like's shape, dtype and device, is contiguous and 16-byte aligned.
void check_like(const char* op, const char* name, Tensor t, Tensor like);
// Checks lse: (B, Hq, Sq) f32, contiguous, on q's device.
void check_lse(const char* op, Tensor lse, Tensor q);

// Queries of sequence b: Sq, or its run of packed rows.
__device__ __forceinline__ int query_len(const AttentionParams& p, int b) {
  return p.query_starts == nullptr ? p.q_len : p.query_starts[b + 1] - p.query_starts[b];
}

// Index maps. Element offsets of a row of Dh values; lse-style statistics are (B, Hq, Sq).
__device__ __forceinline__ int64_t q_offset(const AttentionParams& p, int b, int i, int h) {
  const int64_t row = p.query_starts == nullptr ? static_cast<int64_t>(b) * p.q_len + i : p.query_starts[b] + i;
  return (row * p.num_q_heads + h) * p.head_dim;
}
__device__ __forceinline__ int64_t kv_offset(const AttentionParams& p, int b, int j, int kv_head) {
  if (p.block_tables == nullptr) {
    return ((static_cast<int64_t>(b) * p.kv_len_max + j) * p.num_kv_heads + kv_head) * p.head_dim;
  }
  const int64_t block = p.block_tables[static_cast<int64_t>(b) * p.max_blocks + j / p.block_size];
  return ((block * p.block_size + j % p.block_size) * p.num_kv_heads + kv_head) * p.head_dim;
}
__device__ __forceinline__ int64_t stat_index(const AttentionParams& p, int b, int h, int i) {
  return (static_cast<int64_t>(b) * p.num_q_heads + h) * p.q_len + i;
}

// Valid keys of sequence b, clamped to [0, Skv] so a bad kv_lens entry cannot read out of bounds.
__device__ __forceinline__ int kv_length(const AttentionParams& p, int b) {
  if (p.kv_lens == nullptr) return p.kv_len_max;
  return min(max(p.kv_lens[b], 0), p.kv_len_max);
}

// Whether query i of sequence b (at position kv_len - Sq + i) sees key j.
__device__ __forceinline__ bool key_visible(const AttentionParams& p, int b, int kv_len, int i, int j) {
  if (j >= kv_len) return false;
  if (p.causal && j > kv_len - query_len(p, b) + i) return false;
  if (p.segment_ids != nullptr) {
    const int32_t* segments = p.segment_ids + static_cast<int64_t>(b) * p.q_len;
    if (segments[i] != segments[j]) return false;
  }
  return true;
}

__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) x = fmaxf(x, __shfl_xor_sync(kFullMask, x, offset));
  return x;
}

__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) x += __shfl_xor_sync(kFullMask, x, offset);
  return x;
}

// Eight consecutive elements as f32, in one or two 16-byte loads (src is 16-byte aligned).
__device__ __forceinline__ void load8(const float* src, float (&dst)[8]) {
  const float4 lo = *reinterpret_cast<const float4*>(src);
  const float4 hi = *reinterpret_cast<const float4*>(src + 4);
  dst[0] = lo.x;
  dst[1] = lo.y;
  dst[2] = lo.z;
  dst[3] = lo.w;
  dst[4] = hi.x;
  dst[5] = hi.y;
  dst[6] = hi.z;
  dst[7] = hi.w;
}

__device__ __forceinline__ void load8(const bf16* src, float (&dst)[8]) {
  const uint4 packed = *reinterpret_cast<const uint4*>(src);
  const uint32_t words[4] = {packed.x, packed.y, packed.z, packed.w};
#pragma unroll
  for (int w = 0; w < 4; ++w) {  // little-endian: the lower half-word is the earlier element
    dst[2 * w] = __uint_as_float(words[w] << 16);
    dst[2 * w + 1] = __uint_as_float(words[w] & 0xffff0000u);
  }
}

// Block-cooperative copy of num_rows rows of Dh elements into shared f32 rows spaced `stride` floats
// apart. Row r comes from src + row_offset(r), or is zeros where row_offset(r) < 0: padding rows, and
// keys past kv_len, whose cache slots may hold garbage that 0 * NaN would spread.
template <typename T, typename RowOffset>
__device__ __forceinline__ void load_rows(float* dst, int stride, const T* src, int num_rows, int head_dim,
                                          RowOffset row_offset) {
  const int chunks_per_row = head_dim / 8;
  for (int chunk = threadIdx.x; chunk < num_rows * chunks_per_row; chunk += blockDim.x) {
    const int r = chunk / chunks_per_row;
    const int d0 = (chunk % chunks_per_row) * 8;
    float values[8] = {};
    const int64_t offset = row_offset(r);
    if (offset >= 0) load8(src + offset + d0, values);
#pragma unroll
    for (int e = 0; e < 8; ++e) dst[r * stride + d0 + e] = values[e];
  }
}

// The tiled kernels: kWarps warps, each owning kRowsPerWarp rows of the block's kBlockRows rows, sweep the
// other side in tiles of kTile = 32 entries, one per lane. Shared memory holds the block rows as
// (kBlockRows, Dh) arrays and each tile as a (kTile, Dh + 1) array: the +1 puts lane j's row j on its own
// bank when lanes walk their rows in step.
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * kWarpSize;
constexpr int kRowsPerWarp = 8;
constexpr int kBlockRows = kWarps * kRowsPerWarp;
constexpr int kTile = kWarpSize;
__host__ __device__ constexpr int tile_stride(int head_dim) { return head_dim + 1; }

inline size_t tiled_smem_bytes(int num_row_arrays, int num_tile_arrays, int head_dim) {
  return sizeof(float) * (static_cast<size_t>(num_row_arrays) * kBlockRows * head_dim +
                          static_cast<size_t>(num_tile_arrays) * kTile * tile_stride(head_dim));
}

// The (batch, kv head) of a tiled block: blockIdx.y = b * Hkv + kv_head.
struct BlockHead {
  int b, kv_head, kv_len;
};

__device__ __forceinline__ BlockHead block_head(const AttentionParams& p) {
  const int bh = static_cast<int>(blockIdx.y);
  return {bh / p.num_kv_heads, bh % p.num_kv_heads, kv_length(p, bh / p.num_kv_heads)};
}

// Element offset in q / out / dout of flattened row `row` of the block's kv head, or -1 past Sq * group.
__device__ __forceinline__ int64_t query_row_offset(const AttentionParams& p, const BlockHead& head, int row) {
  if (row >= query_len(p, head.b) * p.group) return -1;
  return q_offset(p, head.b, row / p.group, head.kv_head * p.group + row % p.group);
}

// Element offset in k / v of key j of the block's kv head, or -1 (zero-filled) from kv_len on.
__device__ __forceinline__ int64_t key_row_offset(const AttentionParams& p, const BlockHead& head, int j) {
  return j < head.kv_len ? kv_offset(p, head.b, j, head.kv_head) : -1;
}

// s[rr] = dot(rows[rr], tile_row) over Dh for the warp's rows (a (kRowsPerWarp, Dh) slice, read as a
// broadcast) and this lane's tile row.
__device__ __forceinline__ void dot_rows(float (&s)[kRowsPerWarp], const float* rows, const float* tile_row,
                                         int head_dim) {
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) s[rr] = 0.0f;
#pragma unroll 8
  for (int d = 0; d < head_dim; ++d) {
    const float t = tile_row[d];
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr) s[rr] += rows[rr * head_dim + d] * t;
  }
}

// acc[rr] += sum over tile rows jj of weight[rr] (held by lane jj) * tile[jj], for this lane's head-dim
// slice d = lane + 32 c. The whole warp must call it.
template <int kChunks>
__device__ __forceinline__ void accumulate_tile(float (&acc)[kRowsPerWarp][kChunks],
                                                const float (&weight)[kRowsPerWarp], const float* tile,
                                                int head_dim, int lane) {
#pragma unroll 4
  for (int jj = 0; jj < kTile; ++jj) {
    float w[kRowsPerWarp];
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr) w[rr] = __shfl_sync(kFullMask, weight[rr], jj);
    const float* tile_row = tile + jj * tile_stride(head_dim);
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const int d = lane + c * kWarpSize;
      const float t = d < head_dim ? tile_row[d] : 0.0f;
#pragma unroll
      for (int rr = 0; rr < kRowsPerWarp; ++rr) acc[rr][c] += w[rr] * t;
    }
  }
}

// Writes the lane's slice of row values * factor to dst (Dh elements).
template <typename T, int kChunks>
__device__ __forceinline__ void store_row(T* dst, const float (&values)[kChunks], float factor, int head_dim,
                                          int lane) {
#pragma unroll
  for (int c = 0; c < kChunks; ++c) {
    const int d = lane + c * kWarpSize;
    if (d < head_dim) dst[d] = T(values[c] * factor);
  }
}

// Under causal, query rows of a block of the head's sequence ending at last_row see no key at or past the
// returned bound.
__device__ __forceinline__ int query_block_key_end(const AttentionParams& p, const BlockHead& head, int last_row) {
  const int kv_len = head.kv_len;
  return p.causal ? min(kv_len, kv_len - query_len(p, head.b) + last_row / p.group + 1) : kv_len;
}

// The first flattened query row that can see key `key` (every row without causal).
__device__ __forceinline__ int key_block_first_row(const AttentionParams& p, int kv_len, int key) {
  return p.causal ? max(0, key - (kv_len - p.q_len)) * p.group : 0;
}

// Runs Launcher<T, kChunks>::run(args...) for dtype and kChunks = ceil(head_dim / 32), the number of
// head-dim values each lane owns when lanes split a row.
template <template <typename, int> class Launcher, typename T, typename... Args>
void dispatch_head_dim(int head_dim, const Args&... args) {
  switch ((head_dim + kWarpSize - 1) / kWarpSize) {
    case 1: Launcher<T, 1>::run(args...); return;
    case 2: Launcher<T, 2>::run(args...); return;
    case 3: Launcher<T, 3>::run(args...); return;
    case 4: Launcher<T, 4>::run(args...); return;
  }
  PLM_CHECK(false) << "attention: head_dim " << head_dim << " exceeds " << kMaxHeadDim;
}

template <template <typename, int> class Launcher, typename... Args>
void dispatch_attention(DType dtype, int head_dim, const Args&... args) {
  if (dtype == DType::kF32) {
    dispatch_head_dim<Launcher, float>(head_dim, args...);
  } else {
    dispatch_head_dim<Launcher, bf16>(head_dim, args...);
  }
}

}  // namespace plm::cuda::attention_internal
