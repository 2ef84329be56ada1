// attention_forward on CUDA: a flash-attention-style kernel with f32 accumulation. Each block takes 32
// (query, head) rows of one kv head and streams that head's keys through shared memory in tiles of 32 with
// an online softmax, so scores never reach device memory. In a tile, lane j scores key j against the warp's
// rows, then every lane accumulates its own head-dim slice of p @ V. When the grid would leave SMs idle
// (decode: one query per sequence) the keys are also split across blocks, whose partial (max, sum, out)
// are merged by a second kernel (flash-decoding). paged_attention_forward runs the same kernels on packed
// queries of several sequences and keys read through block tables (attention_common.cuh's index maps).
#include <algorithm>

#include "core/buffer.h"
#include "core/cuda/cuda_check.h"
#include "core/kernels/backends.h"
#include "core/kernels/cuda/attention_common.cuh"

namespace plm::cuda {
namespace {

using namespace attention_internal;

// Partial results of a split over keys, for (split, b, kv_head, row): unnormalised out (Dh) and the
// running max and sum of exp(score - max).
// Paged calls: Sq is the longest query run, and a sequence's rows past its own run are unused.
struct SplitPartials {
  float* out;   // (num_splits, B, Hkv, Sq * group, Dh)
  float* max;   // (num_splits, B, Hkv, Sq * group)
  float* sum;   // (num_splits, B, Hkv, Sq * group)
};

// Writes out = o / l and lse = m + log(l) for query i, head h, from the lane's head-dim slice o; a query
// that saw no key (l == 0) gets out = 0 and lse = -inf.
template <typename T, int kChunks>
__device__ void write_output(const AttentionParams& p, T* out, float* lse, int b, int i, int h, int lane,
                             const float (&o)[kChunks], float m, float l) {
  store_row<T, kChunks>(out + q_offset(p, b, i, h), o, l > 0.0f ? 1.0f / l : 0.0f, p.head_dim, lane);
  if (lse != nullptr && lane == 0) lse[stat_index(p, b, h, i)] = l > 0.0f ? m + logf(l) : -INFINITY;
}

// Grid: (row blocks of Sq * group, B * Hkv, num_splits). Split z covers an equal share of the key tiles
// this block can see.
template <typename T, int kChunks>
__global__ void __launch_bounds__(kThreads)
    flash_forward_kernel(AttentionParams p, const T* q, const T* k, const T* v, T* out, float* lse,
                         SplitPartials partials) {
  const int head_dim = p.head_dim;
  const BlockHead head = block_head(p);
  const int num_rows = query_len(p, head.b) * p.group;
  const int row0 = static_cast<int>(blockIdx.x) * kBlockRows;
  if (row0 >= num_rows) return;  // a paged sequence shorter than the longest: the whole block is idle
  const int warp = threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  const int warp_row0 = row0 + warp * kRowsPerWarp;

  extern __shared__ float smem[];
  float* q_rows = smem;                                  // (kBlockRows, Dh)
  float* k_tile = q_rows + kBlockRows * head_dim;        // (kTile, Dh + 1)
  float* v_tile = k_tile + kTile * tile_stride(head_dim);  // (kTile, Dh + 1)
  load_rows(q_rows, head_dim, q, kBlockRows, head_dim,
            [&](int r) { return query_row_offset(p, head, row0 + r); });

  const int key_end = query_block_key_end(p, head, min(row0 + kBlockRows, num_rows) - 1);
  const int num_tiles = key_end > 0 ? (key_end + kTile - 1) / kTile : 0;
  const int num_splits = static_cast<int>(gridDim.z);
  const int tiles_per_split = (num_tiles + num_splits - 1) / num_splits;
  const int tile_begin = static_cast<int>(blockIdx.z) * tiles_per_split;
  const int tile_end = min(num_tiles, tile_begin + tiles_per_split);

  float m[kRowsPerWarp];           // running max of the scaled scores
  float l[kRowsPerWarp];           // running sum of exp(score - m)
  float o[kRowsPerWarp][kChunks];  // running sum of exp(score - m) * v, this lane's dims
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    m[rr] = -INFINITY;
    l[rr] = 0.0f;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) o[rr][c] = 0.0f;
  }

  for (int tile = tile_begin; tile < tile_end; ++tile) {
    const int key0 = tile * kTile;
    __syncthreads();  // the previous tile is consumed (and q_rows is complete before the first)
    const auto key_offset = [&](int r) { return key_row_offset(p, head, key0 + r); };
    load_rows(k_tile, tile_stride(head_dim), k, kTile, head_dim, key_offset);
    load_rows(v_tile, tile_stride(head_dim), v, kTile, head_dim, key_offset);
    __syncthreads();
    if (warp_row0 >= num_rows) continue;  // a warp past the last row (decode) only helps load

    float s[kRowsPerWarp];  // scores of key key0 + lane, then its probabilities
    dot_rows(s, q_rows + warp * kRowsPerWarp * head_dim, k_tile + lane * tile_stride(head_dim), head_dim);

    // Online softmax: l and o are rescaled to the new running max.
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
      const int row = warp_row0 + rr;
      const bool visible = row < num_rows && key_visible(p, head.b, head.kv_len, row / p.group, key0 + lane);
      const float score = visible ? s[rr] * p.scale : -INFINITY;
      const float m_new = fmaxf(m[rr], warp_max(score));  // warp-uniform
      float prob = 0.0f;
      float correction = 1.0f;
      if (m_new != -INFINITY) {  // else nothing visible yet: l and o stay 0
        correction = expf(m[rr] - m_new);
        prob = expf(score - m_new);
      }
      l[rr] = l[rr] * correction + warp_sum(prob);
      m[rr] = m_new;
#pragma unroll
      for (int c = 0; c < kChunks; ++c) o[rr][c] *= correction;
      s[rr] = prob;
    }
    accumulate_tile(o, s, v_tile, head_dim, lane);  // o += p @ V
  }

#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    const int row = warp_row0 + rr;
    if (row >= num_rows) continue;
    if (num_splits == 1) {
      write_output<T, kChunks>(p, out, lse, head.b, row / p.group, head.kv_head * p.group + row % p.group, lane,
                               o[rr], m[rr], l[rr]);
      continue;
    }
    const int64_t partial_row = (static_cast<int64_t>(blockIdx.z) * gridDim.y + blockIdx.y) * p.q_len * p.group + row;
    store_row<float, kChunks>(partials.out + partial_row * head_dim, o[rr], 1.0f, head_dim, lane);
    if (lane == 0) {
      partials.max[partial_row] = m[rr];
      partials.sum[partial_row] = l[rr];
    }
  }
}

// Merges the splits: one warp per (b, kv_head, row), rescaling each split's sums to the common max.
template <typename T, int kChunks>
__global__ void __launch_bounds__(kThreads)
    combine_splits_kernel(AttentionParams p, T* out, float* lse, SplitPartials partials, int num_splits) {
  const int num_rows = p.q_len * p.group;
  const int64_t num_warps_total = static_cast<int64_t>(p.batch) * p.num_kv_heads * num_rows;
  const int64_t global_warp = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  if (global_warp >= num_warps_total) return;
  const int row = static_cast<int>(global_warp % num_rows);
  const int bh = static_cast<int>(global_warp / num_rows);
  const int b = bh / p.num_kv_heads;
  const int kv_head = bh % p.num_kv_heads;
  if (row >= query_len(p, b) * p.group) return;  // past a paged sequence's queries

  float m = -INFINITY;
  for (int z = 0; z < num_splits; ++z) m = fmaxf(m, partials.max[z * num_warps_total + global_warp]);
  float l = 0.0f;
  float o[kChunks] = {};
  if (m != -INFINITY) {
    for (int z = 0; z < num_splits; ++z) {
      const int64_t partial_row = z * num_warps_total + global_warp;
      const float weight = expf(partials.max[partial_row] - m);  // 0 for a split that saw no key
      l += partials.sum[partial_row] * weight;
#pragma unroll
      for (int c = 0; c < kChunks; ++c) {
        const int d = lane + c * kWarpSize;
        if (d < p.head_dim) o[c] += partials.out[partial_row * p.head_dim + d] * weight;
      }
    }
  }
  write_output<T, kChunks>(p, out, lse, b, row / p.group, kv_head * p.group + row % p.group, lane, o, m, l);
}

// Splits over keys only while the grid is short of two blocks per SM, keeping >= 4 key tiles per split.
int choose_num_splits(const AttentionParams& p, int64_t num_blocks, int device) {
  constexpr int kMinTilesPerSplit = 4;
  constexpr int kMaxSplits = 32;
  int num_sms = 0;
  PLM_CUDA_CHECK(cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, device));
  const int target_blocks = 2 * num_sms;
  if (num_blocks >= target_blocks) return 1;
  const int num_tiles = (p.kv_len_max + kTile - 1) / kTile;
  const int wanted = static_cast<int>((target_blocks + num_blocks - 1) / num_blocks);
  return std::clamp(std::min(wanted, num_tiles / kMinTilesPerSplit), 1, kMaxSplits);
}

template <typename T, int kChunks>
struct ForwardLauncher {
  static void run(const AttentionParams& p, Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v,
                  cudaStream_t stream) {
    const int num_rows = p.q_len * p.group;
    const int num_row_blocks = (num_rows + kBlockRows - 1) / kBlockRows;
    const int num_heads_total = p.batch * p.num_kv_heads;
    const int num_splits =
        choose_num_splits(p, static_cast<int64_t>(num_row_blocks) * num_heads_total, q.device().index);
    const size_t smem_bytes = tiled_smem_bytes(1, 2, p.head_dim);
    PLM_CUDA_CHECK(cudaFuncSetAttribute(flash_forward_kernel<T, kChunks>,
                                        cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem_bytes)));

    // The partials are freed when this returns, before the kernels run: the caching allocator hands the
    // block out again only in stream order on plm's one compute stream.
    Buffer scratch;
    SplitPartials partials{};
    const int64_t num_partial_rows = static_cast<int64_t>(num_splits) * num_heads_total * num_rows;
    if (num_splits > 1) {
      scratch = Buffer(static_cast<size_t>(num_partial_rows) * (p.head_dim + 2) * sizeof(float), q.device());
      partials.out = static_cast<float*>(scratch.data());
      partials.max = partials.out + num_partial_rows * p.head_dim;
      partials.sum = partials.max + num_partial_rows;
    }
    T* out_data = static_cast<T*>(out.data());
    float* lse_data = lse.defined() ? static_cast<float*>(lse.data()) : nullptr;
    const dim3 grid(num_row_blocks, num_heads_total, num_splits);
    flash_forward_kernel<T, kChunks><<<grid, kThreads, smem_bytes, stream>>>(
        p, static_cast<const T*>(q.data()), static_cast<const T*>(k.data()), static_cast<const T*>(v.data()),
        out_data, lse_data, partials);
    PLM_CUDA_CHECK_LAUNCH();
    if (num_splits > 1) {
      const int64_t num_warps_total = static_cast<int64_t>(num_heads_total) * num_rows;
      const auto num_blocks = static_cast<unsigned>((num_warps_total + kWarps - 1) / kWarps);
      combine_splits_kernel<T, kChunks><<<num_blocks, kThreads, 0, stream>>>(p, out_data, lse_data, partials,
                                                                             num_splits);
      PLM_CUDA_CHECK_LAUNCH();
    }
  }
};

}  // namespace

void attention_forward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, const AttentionOptions& options,
                       Stream s) {
  constexpr const char* kOp = "attention_forward";
  const AttentionParams p = check_attention(kOp, q, k, v, options);
  check_like(kOp, "out", out, q);
  if (lse.defined()) check_lse(kOp, lse, q);
  if (p.batch == 0 || p.q_len == 0 || p.num_q_heads == 0) return;
  dispatch_attention<ForwardLauncher>(q.dtype(), p.head_dim, p, out, lse, q, k, v,
                                      static_cast<cudaStream_t>(s.handle));
}

void paged_attention_forward(Tensor out, Tensor q, Tensor k_cache, Tensor v_cache, const PagedAttentionBatch& batch,
                             Stream s) {
  constexpr const char* kOp = "paged_attention_forward";
  const AttentionParams p = check_paged_attention(kOp, q, k_cache, v_cache, batch);
  check_like(kOp, "out", out, q);
  if (p.batch == 0 || p.q_len == 0) return;
  dispatch_attention<ForwardLauncher>(q.dtype(), p.head_dim, p, out, Tensor(), q, k_cache, v_cache,
                                      static_cast<cudaStream_t>(s.handle));
}

}  // namespace plm::cuda
