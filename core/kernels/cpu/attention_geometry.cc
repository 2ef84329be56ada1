// check_attention, check_attention_backward and check_paged_attention of attention_geometry.h: the argument checks every CPU attention
// kernel runs first.
#include <cmath>

#include "core/kernels/cpu/attention_geometry.h"
#include "core/kernels/cpu/checks.h"

namespace plm::cpu {

AttentionGeometry check_attention(const char* op, Tensor q, Tensor k, Tensor v, Tensor lse,
                                  const AttentionOptions& options) {
  check_tensor(op, "q", q, DType::kF32);
  check_tensor(op, "k", k, DType::kF32);
  PLM_CHECK(q.rank() == 4 && k.rank() == 4)
      << op << ": q " << q.describe() << " and k " << k.describe() << " must be (B, S, H, Dh)";
  AttentionGeometry g{.batch = q.size(0),
                      .q_len = q.size(1),
                      .kv_len = k.size(1),
                      .num_q_heads = q.size(2),
                      .num_kv_heads = k.size(2),
                      .head_dim = q.size(3),
                      .scale = options.scale,
                      .causal = options.causal,
                      .kv_lens = nullptr,
                      .segment_ids = nullptr};
  PLM_CHECK(k.size(0) == g.batch && k.size(3) == g.head_dim)
      << op << ": k " << k.describe() << " does not match q " << q.describe() << " in batch or head_dim";
  PLM_CHECK(g.num_kv_heads > 0 && g.num_q_heads % g.num_kv_heads == 0)
      << op << ": Hq (" << g.num_q_heads << ") must be a multiple of Hkv (" << g.num_kv_heads << ")";
  check_f32(op, "v", v, k.shape());
  if (lse.defined()) check_f32(op, "lse", lse, {g.batch, g.num_q_heads, g.q_len});
  if (g.scale == 0.0f) g.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(g.head_dim)));
  if (options.kv_lens.defined()) {
    check_tensor(op, "kv_lens", options.kv_lens, DType::kI32);
    check_shape(op, "kv_lens", options.kv_lens, {g.batch});
    g.kv_lens = options.kv_lens.data_as<int32_t>();
    for (int64_t b = 0; b < g.batch; ++b) {
      PLM_CHECK(0 <= g.kv_lens[b] && g.kv_lens[b] <= g.kv_len)
          << op << ": kv_lens[" << b << "] = " << g.kv_lens[b] << " outside [0, Skv = " << g.kv_len << "]";
    }
  }
  if (options.segment_ids.defined()) {
    PLM_CHECK_EQ(g.q_len, g.kv_len) << op << ": segment_ids need Sq == Skv";
    check_tensor(op, "segment_ids", options.segment_ids, DType::kI32);
    check_shape(op, "segment_ids", options.segment_ids, {g.batch, g.q_len});
    g.segment_ids = options.segment_ids.data_as<int32_t>();
  }
  return g;
}

AttentionGeometry check_attention_backward(const char* op, Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q,
                                           Tensor k, Tensor v, Tensor out, Tensor lse,
                                           const AttentionOptions& options) {
  PLM_CHECK(lse.defined()) << op << ": needs the lse saved by attention_forward";
  const AttentionGeometry g = check_attention(op, q, k, v, lse, options);
  check_f32(op, "dq", dq, q.shape());
  check_f32(op, "dout", dout, q.shape());
  check_f32(op, "out", out, q.shape());
  check_f32(op, "dk", dk, k.shape());
  check_f32(op, "dv", dv, k.shape());
  return g;
}

AttentionGeometry check_paged_attention(const char* op, Tensor q, Tensor k_cache, Tensor v_cache,
                                        const PagedAttentionBatch& batch) {
  check_tensor(op, "q", q, DType::kF32);
  PLM_CHECK(k_cache.defined() && (k_cache.dtype() == DType::kF32 || k_cache.dtype() == DType::kBF16))
      << op << ": k_cache must be f32 or bf16, got " << k_cache.describe();
  check_tensor(op, "k_cache", k_cache, k_cache.dtype());
  PLM_CHECK(q.rank() == 3 && k_cache.rank() == 4 && q.size(2) == k_cache.size(3))
      << op << ": q " << q.describe() << " must be (T, Hq, Dh) and k_cache " << k_cache.describe()
      << " (num_blocks, block_size, Hkv, Dh)";
  check_tensor(op, "v_cache", v_cache, k_cache.dtype());
  check_shape(op, "v_cache", v_cache, k_cache.shape());
  check_tensor(op, "block_tables", batch.block_tables, DType::kI32);
  check_rank(op, "block_tables", batch.block_tables, 2);
  const int64_t num_sequences = batch.block_tables.size(0);
  check_tensor(op, "query_starts", batch.query_starts, DType::kI32);
  check_shape(op, "query_starts", batch.query_starts, {num_sequences + 1});
  check_tensor(op, "kv_lens", batch.kv_lens, DType::kI32);
  check_shape(op, "kv_lens", batch.kv_lens, {num_sequences});
  AttentionGeometry g{.batch = num_sequences,
                      .q_len = batch.max_query_len,
                      .kv_len = batch.block_tables.size(1) * k_cache.size(1),
                      .num_q_heads = q.size(1),
                      .num_kv_heads = k_cache.size(2),
                      .head_dim = q.size(2),
                      .scale = batch.scale,
                      .causal = true,
                      .kv_lens = batch.kv_lens.data_as<int32_t>(),
                      .segment_ids = nullptr,
                      .query_starts = batch.query_starts.data_as<int32_t>(),
                      .block_tables = batch.block_tables.data_as<int32_t>(),
                      .max_blocks = batch.block_tables.size(1),
                      .block_size = k_cache.size(1)};
  PLM_CHECK(g.num_kv_heads > 0 && g.num_q_heads % g.num_kv_heads == 0)
      << op << ": Hq (" << g.num_q_heads << ") must be a multiple of Hkv (" << g.num_kv_heads << ")";
  if (g.scale == 0.0f) g.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(g.head_dim)));
  PLM_CHECK(g.query_starts[0] == 0 && g.query_starts[num_sequences] <= q.size(0))
      << op << ": query_starts run from " << g.query_starts[0] << " to " << g.query_starts[num_sequences]
      << ", outside the " << q.size(0) << " rows of q";
  const int64_t num_blocks = k_cache.size(0);
  for (int64_t b = 0; b < num_sequences; ++b) {
    const int64_t queries = g.query_len(b), keys = g.kv_lens[b];
    PLM_CHECK(0 <= queries && queries <= g.q_len)
        << op << ": sequence " << b << " has " << queries << " queries, outside [0, max_query_len = " << g.q_len << "]";
    PLM_CHECK(0 <= keys && keys <= g.kv_len)
        << op << ": kv_lens[" << b << "] = " << keys << " outside [0, max_blocks * block_size = " << g.kv_len << "]";
    for (int64_t j = 0; j < keys; j += g.block_size) {
      const int32_t block = g.block_tables[b * g.max_blocks + j / g.block_size];
      PLM_CHECK(0 <= block && block < num_blocks)
          << op << ": block_tables[" << b << ", " << j / g.block_size << "] = " << block << " outside the "
          << num_blocks << " blocks";
    }
  }
  return g;
}

}  // namespace plm::cpu
