// The naive attention forward of attention_reference.h: a max pass and a sum pass over the keys per
// (batch, query, head) thread, with the output accumulated in a local array.
#include "core/kernels/cuda/attention_reference.h"

#include "core/cuda/cuda_check.h"
#include "core/kernels/cuda/attention_common.cuh"

namespace plm::cuda {
namespace {

using namespace attention_internal;

template <typename T>
__device__ float scaled_score(const AttentionParams& p, const T* q_row, const T* k_row) {
  float dot = 0.0f;
  for (int d = 0; d < p.head_dim; ++d) dot += static_cast<float>(q_row[d]) * static_cast<float>(k_row[d]);
  return dot * p.scale;
}

// One thread per row of q in memory order (b, i, h).
template <typename T>
__global__ void attention_reference_kernel(AttentionParams p, const T* q, const T* k, const T* v, T* out,
                                           float* lse) {
  const int64_t num_rows = static_cast<int64_t>(p.batch) * p.q_len * p.num_q_heads;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (row >= num_rows) return;
  const int h = static_cast<int>(row % p.num_q_heads);
  const int i = static_cast<int>(row / p.num_q_heads % p.q_len);
  const int b = static_cast<int>(row / p.num_q_heads / p.q_len);
  const int kv_head = h / p.group;
  const int kv_len = kv_length(p, b);
  const T* q_row = q + row * p.head_dim;

  float m = -INFINITY;
  for (int j = 0; j < kv_len; ++j) {
    if (key_visible(p, b, kv_len, i, j)) m = fmaxf(m, scaled_score(p, q_row, k + kv_offset(p, b, j, kv_head)));
  }
  float l = 0.0f;
  float acc[kMaxHeadDim] = {};
  for (int j = 0; j < kv_len && m != -INFINITY; ++j) {
    if (!key_visible(p, b, kv_len, i, j)) continue;
    const float weight = expf(scaled_score(p, q_row, k + kv_offset(p, b, j, kv_head)) - m);
    l += weight;
    const T* v_row = v + kv_offset(p, b, j, kv_head);
    for (int d = 0; d < p.head_dim; ++d) acc[d] += weight * static_cast<float>(v_row[d]);
  }
  for (int d = 0; d < p.head_dim; ++d) out[row * p.head_dim + d] = T(l > 0.0f ? acc[d] / l : 0.0f);
  if (lse != nullptr) lse[stat_index(p, b, h, i)] = l > 0.0f ? m + logf(l) : -INFINITY;
}

template <typename T>
void launch_reference(const AttentionParams& p, Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v,
                      cudaStream_t stream) {
  constexpr int kBlockThreads = 128;
  const int64_t num_rows = static_cast<int64_t>(p.batch) * p.q_len * p.num_q_heads;
  const auto num_blocks = static_cast<unsigned>((num_rows + kBlockThreads - 1) / kBlockThreads);
  attention_reference_kernel<T><<<num_blocks, kBlockThreads, 0, stream>>>(
      p, static_cast<const T*>(q.data()), static_cast<const T*>(k.data()), static_cast<const T*>(v.data()),
      static_cast<T*>(out.data()), lse.defined() ? static_cast<float*>(lse.data()) : nullptr);
  PLM_CUDA_CHECK_LAUNCH();
}

}  // namespace

void attention_forward_reference(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v,
                                 const AttentionOptions& options, Stream s) {
  constexpr const char* kOp = "attention_forward_reference";
  const AttentionParams p = check_attention(kOp, q, k, v, options);
  check_like(kOp, "out", out, q);
  if (lse.defined()) check_lse(kOp, lse, q);
  if (static_cast<int64_t>(p.batch) * p.q_len * p.num_q_heads == 0) return;
  const auto stream = static_cast<cudaStream_t>(s.handle);
  if (q.dtype() == DType::kF32) {
    launch_reference<float>(p, out, lse, q, k, v, stream);
  } else {
    launch_reference<bf16>(p, out, lse, q, k, v, stream);
  }
}

}  // namespace plm::cuda
