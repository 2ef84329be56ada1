// attention_backward on CUDA, without atomics: both passes recompute P = exp(scale * q.k - lse) from the
// saved lse, tile by tile as the forward does. The dq pass sweeps each block of (query, head) rows over
// its keys; the dk/dv pass sweeps each block of keys over the (query, head) rows of every query head
// sharing its kv head, which sums dk, dv over those heads in registers. With dP = dout.v and
// delta = rowsum(dout * out) (computed first): dS = P (dP - delta), dq = scale dS k, dk = scale dS^T q,
// dv = P^T dout. f32 accumulation; dq, dk, dv are written (=) in q's dtype.
#include "core/buffer.h"
#include "core/cuda/cuda_check.h"
#include "core/kernels/backends.h"
#include "core/kernels/cuda/attention_common.cuh"

namespace plm::cuda {
namespace {

using namespace attention_internal;

// delta (B, Hq, Sq) = sum over Dh of dout * out: one warp per (b, i, h), taken in memory order.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    delta_kernel(AttentionParams p, const T* dout, const T* out, float* delta) {
  const int64_t num_rows = static_cast<int64_t>(p.batch) * p.q_len * p.num_q_heads;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  if (row >= num_rows) return;
  float sum = 0.0f;
  for (int d = lane; d < p.head_dim; d += kWarpSize) {
    sum += static_cast<float>(dout[row * p.head_dim + d]) * static_cast<float>(out[row * p.head_dim + d]);
  }
  sum = warp_sum(sum);
  const int h = static_cast<int>(row % p.num_q_heads);
  const int64_t bi = row / p.num_q_heads;
  if (lane == 0) delta[stat_index(p, static_cast<int>(bi / p.q_len), h, static_cast<int>(bi % p.q_len))] = sum;
}

// P and dS of the warp's rows against one tile entry per lane. s and dp hold the raw dot products q.k and
// dout.v on entry and P and dS on return; both are 0 where `visible` is false.
__device__ __forceinline__ void probabilities_and_score_grads(float (&s)[kRowsPerWarp],
                                                              float (&dp)[kRowsPerWarp],
                                                              const bool (&visible)[kRowsPerWarp],
                                                              const float (&lse)[kRowsPerWarp],
                                                              const float (&delta)[kRowsPerWarp], float scale) {
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    const float prob = visible[rr] ? expf(s[rr] * scale - lse[rr]) : 0.0f;
    dp[rr] = visible[rr] ? prob * (dp[rr] - delta[rr]) : 0.0f;
    s[rr] = prob;
  }
}

// dq for blocks of (query, head) rows. Grid: (row blocks of Sq * group, B * Hkv).
template <typename T, int kChunks>
__global__ void __launch_bounds__(kThreads)
    flash_backward_dq_kernel(AttentionParams p, const T* q, const T* k, const T* v, const T* dout,
                             const float* lse, const float* delta, T* dq) {
  const int head_dim = p.head_dim;
  const BlockHead head = block_head(p);
  const int num_rows = p.q_len * p.group;
  const int row0 = static_cast<int>(blockIdx.x) * kBlockRows;
  const int warp = threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  const int warp_row0 = row0 + warp * kRowsPerWarp;

  extern __shared__ float smem[];
  float* q_rows = smem;                                    // (kBlockRows, Dh)
  float* dout_rows = q_rows + kBlockRows * head_dim;       // (kBlockRows, Dh)
  float* k_tile = dout_rows + kBlockRows * head_dim;       // (kTile, Dh + 1)
  float* v_tile = k_tile + kTile * tile_stride(head_dim);  // (kTile, Dh + 1)
  const auto row_offset = [&](int r) { return query_row_offset(p, head, row0 + r); };
  load_rows(q_rows, head_dim, q, kBlockRows, head_dim, row_offset);
  load_rows(dout_rows, head_dim, dout, kBlockRows, head_dim, row_offset);

  float row_lse[kRowsPerWarp];
  float row_delta[kRowsPerWarp];
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    const int row = warp_row0 + rr;
    const bool valid = row < num_rows;
    const int64_t stat = valid ? stat_index(p, head.b, head.kv_head * p.group + row % p.group, row / p.group) : 0;
    row_lse[rr] = valid ? lse[stat] : 0.0f;
    row_delta[rr] = valid ? delta[stat] : 0.0f;
  }

  float acc[kRowsPerWarp][kChunks] = {};  // sum of dS * k, this lane's dims
  const int key_end = query_block_key_end(p, head, min(row0 + kBlockRows, num_rows) - 1);
  const int num_tiles = key_end > 0 ? (key_end + kTile - 1) / kTile : 0;
  for (int tile = 0; tile < num_tiles; ++tile) {
    const int key0 = tile * kTile;
    __syncthreads();  // the previous tile is consumed (and the rows are complete before the first)
    const auto key_offset = [&](int r) { return key_row_offset(p, head, key0 + r); };
    load_rows(k_tile, tile_stride(head_dim), k, kTile, head_dim, key_offset);
    load_rows(v_tile, tile_stride(head_dim), v, kTile, head_dim, key_offset);
    __syncthreads();
    if (warp_row0 >= num_rows) continue;

    float s[kRowsPerWarp];
    float dp[kRowsPerWarp];
    dot_rows(s, q_rows + warp * kRowsPerWarp * head_dim, k_tile + lane * tile_stride(head_dim), head_dim);
    dot_rows(dp, dout_rows + warp * kRowsPerWarp * head_dim, v_tile + lane * tile_stride(head_dim), head_dim);
    bool visible[kRowsPerWarp];
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
      const int row = warp_row0 + rr;
      visible[rr] = row < num_rows && key_visible(p, head.b, head.kv_len, row / p.group, key0 + lane);
    }
    probabilities_and_score_grads(s, dp, visible, row_lse, row_delta, p.scale);
    accumulate_tile(acc, dp, k_tile, head_dim, lane);  // dq += dS @ K
  }

#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    const int row = warp_row0 + rr;
    if (row < num_rows) store_row<T, kChunks>(dq + query_row_offset(p, head, row), acc[rr], p.scale, head_dim, lane);
  }
}

// dk and dv for blocks of keys, summed over the query heads of the kv head. Grid: (key blocks of Skv,
// B * Hkv). Keys at or past kv_len get zeros.
template <typename T, int kChunks>
__global__ void __launch_bounds__(kThreads)
    flash_backward_dkdv_kernel(AttentionParams p, const T* q, const T* k, const T* v, const T* dout,
                               const float* lse, const float* delta, T* dk, T* dv) {
  const int head_dim = p.head_dim;
  const BlockHead head = block_head(p);
  const int num_query_rows = p.q_len * p.group;
  const int key_block0 = static_cast<int>(blockIdx.x) * kBlockRows;
  const int warp = threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  const int warp_key0 = key_block0 + warp * kRowsPerWarp;

  extern __shared__ float smem[];
  float* k_rows = smem;                                       // (kBlockRows, Dh)
  float* v_rows = k_rows + kBlockRows * head_dim;             // (kBlockRows, Dh)
  float* q_tile = v_rows + kBlockRows * head_dim;             // (kTile, Dh + 1)
  float* dout_tile = q_tile + kTile * tile_stride(head_dim);  // (kTile, Dh + 1)
  const auto key_offset = [&](int r) { return key_row_offset(p, head, key_block0 + r); };
  load_rows(k_rows, head_dim, k, kBlockRows, head_dim, key_offset);
  load_rows(v_rows, head_dim, v, kBlockRows, head_dim, key_offset);

  float dk_acc[kRowsPerWarp][kChunks] = {};  // sum of dS * q, this lane's dims
  float dv_acc[kRowsPerWarp][kChunks] = {};  // sum of P * dout, this lane's dims
  const int first_row =
      key_block0 < head.kv_len ? key_block_first_row(p, head.kv_len, key_block0) : num_query_rows;
  for (int tile_row0 = first_row; tile_row0 < num_query_rows; tile_row0 += kTile) {
    __syncthreads();  // the previous tile is consumed (and the key rows are complete before the first)
    const auto row_offset = [&](int r) { return query_row_offset(p, head, tile_row0 + r); };
    load_rows(q_tile, tile_stride(head_dim), q, kTile, head_dim, row_offset);
    load_rows(dout_tile, tile_stride(head_dim), dout, kTile, head_dim, row_offset);
    __syncthreads();
    if (warp_key0 >= head.kv_len) continue;  // the warp's keys are invisible to every query

    // This lane's query row.
    const int row = tile_row0 + lane;
    const bool row_valid = row < num_query_rows;
    const int i = row / p.group;
    const int64_t stat = row_valid ? stat_index(p, head.b, head.kv_head * p.group + row % p.group, i) : 0;
    const float lane_lse = row_valid ? lse[stat] : 0.0f;
    const float lane_delta = row_valid ? delta[stat] : 0.0f;
    float row_lse[kRowsPerWarp];
    float row_delta[kRowsPerWarp];
    bool visible[kRowsPerWarp];
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
      row_lse[rr] = lane_lse;
      row_delta[rr] = lane_delta;
      visible[rr] = row_valid && key_visible(p, head.b, head.kv_len, i, warp_key0 + rr);
    }

    float s[kRowsPerWarp];
    float dp[kRowsPerWarp];
    dot_rows(s, k_rows + warp * kRowsPerWarp * head_dim, q_tile + lane * tile_stride(head_dim), head_dim);
    dot_rows(dp, v_rows + warp * kRowsPerWarp * head_dim, dout_tile + lane * tile_stride(head_dim), head_dim);
    probabilities_and_score_grads(s, dp, visible, row_lse, row_delta, p.scale);
    accumulate_tile(dv_acc, s, dout_tile, head_dim, lane);  // dv += P^T @ dout
    accumulate_tile(dk_acc, dp, q_tile, head_dim, lane);    // dk += dS^T @ Q
  }

#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    const int j = warp_key0 + rr;
    if (j >= p.kv_len_max) continue;
    const int64_t offset = kv_offset(p, head.b, j, head.kv_head);
    store_row<T, kChunks>(dk + offset, dk_acc[rr], p.scale, head_dim, lane);
    store_row<T, kChunks>(dv + offset, dv_acc[rr], 1.0f, head_dim, lane);
  }
}

template <typename T, int kChunks>
struct BackwardLauncher {
  static void run(const AttentionParams& p, Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k,
                  Tensor v, Tensor out, Tensor lse, cudaStream_t stream) {
    const auto* q_data = static_cast<const T*>(q.data());
    const auto* k_data = static_cast<const T*>(k.data());
    const auto* v_data = static_cast<const T*>(v.data());
    const auto* dout_data = static_cast<const T*>(dout.data());
    const auto* lse_data = static_cast<const float*>(lse.data());
    const int num_heads_total = p.batch * p.num_kv_heads;
    const size_t smem_bytes = tiled_smem_bytes(2, 2, p.head_dim);

    // delta is freed when this returns, before the kernels run: the caching allocator hands the block
    // out again only in stream order on plm's one compute stream.
    const int64_t num_rows_total = static_cast<int64_t>(p.batch) * p.q_len * p.num_q_heads;
    Buffer delta(static_cast<size_t>(num_rows_total) * sizeof(float), q.device());
    auto* delta_data = static_cast<float*>(delta.data());
    if (num_rows_total > 0) {
      const auto num_blocks = static_cast<unsigned>((num_rows_total + kWarps - 1) / kWarps);
      delta_kernel<T><<<num_blocks, kThreads, 0, stream>>>(p, dout_data, static_cast<const T*>(out.data()),
                                                           delta_data);
      PLM_CUDA_CHECK_LAUNCH();
      PLM_CUDA_CHECK(cudaFuncSetAttribute(flash_backward_dq_kernel<T, kChunks>,
                                          cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem_bytes)));
      const dim3 grid((p.q_len * p.group + kBlockRows - 1) / kBlockRows, num_heads_total);
      flash_backward_dq_kernel<T, kChunks><<<grid, kThreads, smem_bytes, stream>>>(
          p, q_data, k_data, v_data, dout_data, lse_data, delta_data, static_cast<T*>(dq.data()));
      PLM_CUDA_CHECK_LAUNCH();
    }
    if (p.kv_len_max > 0) {
      PLM_CUDA_CHECK(cudaFuncSetAttribute(flash_backward_dkdv_kernel<T, kChunks>,
                                          cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem_bytes)));
      const dim3 grid((p.kv_len_max + kBlockRows - 1) / kBlockRows, num_heads_total);
      flash_backward_dkdv_kernel<T, kChunks><<<grid, kThreads, smem_bytes, stream>>>(
          p, q_data, k_data, v_data, dout_data, lse_data, delta_data, static_cast<T*>(dk.data()),
          static_cast<T*>(dv.data()));
      PLM_CUDA_CHECK_LAUNCH();
    }
  }
};

}  // namespace

void attention_backward(Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k, Tensor v, Tensor out,
                        Tensor lse, const AttentionOptions& options, Stream s) {
  constexpr const char* kOp = "attention_backward";
  const AttentionParams p = check_attention(kOp, q, k, v, options);
  check_like(kOp, "dq", dq, q);
  check_like(kOp, "dk", dk, k);
  check_like(kOp, "dv", dv, v);
  check_like(kOp, "dout", dout, q);
  check_like(kOp, "out", out, q);
  PLM_CHECK(lse.defined()) << kOp << ": needs the lse saved by attention_forward";
  check_lse(kOp, lse, q);
  if (p.batch == 0 || p.num_kv_heads == 0) return;
  dispatch_attention<BackwardLauncher>(q.dtype(), p.head_dim, p, dq, dk, dv, dout, q, k, v, out, lse,
                                       static_cast<cudaStream_t>(s.handle));
}

}  // namespace plm::cuda
