// check_attention of attention_geometry.h: the argument checks every CPU attention kernel runs first.
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

}  // namespace plm::cpu
