// Option structs shared by the kernel declarations in core/kernels/ops.h.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace plm {

struct MatmulOptions {
  bool trans_a = false;  // a is stored (..., K, M)
  bool trans_b = false;  // b is stored (..., N, K): the nn.Linear weight layout
  float alpha = 1.0f;
  float beta = 0.0f;     // c = alpha * op(a) op(b) + beta * c (+ bias)
  Tensor bias = {};      // optional (N), c's dtype, added to every row after alpha scaling
  // CPU: kBF16 is the bf16 compute mode (a, and an f32 b, rounded to bf16, bf16 x bf16 products summed in f32:
  // cpu/gemm_bf16.h with bf16 weights, cpu/gemm_bf16_packed.h's sgemm_bf16 with f32 ones), kF32 the exact
  // oracle. CUDA: the operands' dtype decides; must be kF32 or theirs.
  DType compute = DType::kF32;
  // CPU bf16 compute mode only: b (bf16, (N, K) with trans_b) is stored in weight panels
  // (cpu/gemm_bf16_packed.h pack_weight_panels), as Linear::weight_panels says.
  bool b_panels = false;
};

struct AttentionOptions {
  bool causal = false;
  float scale = 0.0f;    // 0 means 1/sqrt(head_dim)
  // Optional (B) i32: valid keys per sequence (KV cache filled to kv_lens[b] <= Skv). Without it every
  // sequence has Skv keys.
  Tensor kv_lens = {};
  // Optional (B, S) i32, only when Sq == Skv: query i sees key j only if segment_ids[i] == segment_ids[j]
  // (packed documents). Combined with causal when both are set.
  Tensor segment_ids = {};
  // CPU: kBF16 is the bf16 compute mode (q, k, v and the probabilities rounded to bf16, bf16 products summed in
  // f32, softmax statistics in f32: cpu/attention_bf16.h), kF32 the exact oracle. CUDA computes in its operands'
  // dtype and ignores it.
  DType compute = DType::kF32;
};

// The sequences of one paged_attention_forward call: i32 tensors on the call's device.
struct PagedAttentionBatch {
  Tensor block_tables;        // (B, max_blocks): the cache blocks of sequence b, in key order
  Tensor query_starts;        // (B + 1): sequence b's queries are rows [query_starts[b], query_starts[b + 1]) of q
  Tensor kv_lens;             // (B): keys of sequence b, its new tokens' included (its queries are the last ones)
  int64_t max_query_len = 0;  // the largest query run (sizes the CUDA grid; the CPU checks it)
  float scale = 0.0f;         // 0 means 1/sqrt(head_dim)
  DType compute = DType::kF32;  // as AttentionOptions::compute
};

struct AdamWOptions {
  float lr = 1e-4f;
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;  // decoupled: master -= lr * weight_decay * master
  int64_t step = 1;           // 1-based, for bias correction
  float grad_scale = 1.0f;    // grad is multiplied by this first (loss-scale / clipping factor)
};

struct CrossEntropyOptions {
  int32_t ignore_index = -100;
  int64_t vocab_chunk = 8192;  // logits never exceed (N, vocab_chunk)
  int64_t vocab_start = 0;     // the id of the weight's first row (a vocab-parallel shard); targets are global ids
  DType compute = DType::kF32; // the head GEMMs' MatmulOptions::compute (forward and backward)
};

}  // namespace plm
