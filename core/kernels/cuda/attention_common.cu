// Host-side argument checks shared by the CUDA attention entry points (see attention_common.cuh).
#include "core/kernels/cuda/attention_common.cuh"

#include <cmath>
#include <cstdint>
#include <limits>

namespace plm::cuda::attention_internal {

namespace {

constexpr uintptr_t kVectorBytes = 16;  // load8 reads 16-byte vectors
constexpr int64_t kMaxGridY = 65535;

bool vector_aligned(const Tensor& t) { return reinterpret_cast<uintptr_t>(t.data()) % kVectorBytes == 0; }

void check_ids(const char* op, const char* name, Tensor ids, Shape shape, Device device) {
  PLM_CHECK(ids.shape() == shape && ids.dtype() == DType::kI32 && ids.device() == device && ids.is_contiguous())
      << op << ": " << name << " " << ids.describe() << " must be i32" << shape.to_string() << " on "
      << device.to_string();
}

// q, k, v (any rank) share one CUDA device, are all f32 or all bf16, contiguous and 16-byte aligned.
void check_operands(const char* op, Tensor q, Tensor k, Tensor v) {
  PLM_CHECK(q.is_cuda() && k.device() == q.device() && v.device() == q.device())
      << op << ": q " << q.describe() << ", k " << k.describe() << ", v " << v.describe()
      << " must be on one CUDA device";
  PLM_CHECK((q.dtype() == DType::kF32 || q.dtype() == DType::kBF16) && k.dtype() == q.dtype() &&
            v.dtype() == q.dtype())
      << op << ": q, k, v must all be f32 or all bf16, got " << q.describe() << ", " << k.describe() << ", "
      << v.describe();
  PLM_CHECK(q.is_contiguous() && k.is_contiguous() && v.is_contiguous())
      << op << ": needs contiguous q " << q.describe() << ", k " << k.describe() << ", v " << v.describe();
  PLM_CHECK(vector_aligned(q) && vector_aligned(k) && vector_aligned(v))
      << op << ": q, k, v data must be 16-byte aligned (" << q.data() << ", " << k.data() << ", " << v.data()
      << ")";
}

// The head counts and sizes every call shares, checked; scale 0 resolved to 1/sqrt(Dh).
AttentionParams head_params(const char* op, int64_t num_q_heads, int64_t num_kv_heads, int64_t head_dim, float scale) {
  PLM_CHECK(num_kv_heads > 0 && num_q_heads % num_kv_heads == 0)
      << op << ": Hq (" << num_q_heads << ") must be a multiple of Hkv (" << num_kv_heads << ")";
  PLM_CHECK(head_dim > 0 && head_dim <= kMaxHeadDim && head_dim % 8 == 0)
      << op << ": head_dim " << head_dim << " must be a multiple of 8 in [8, " << kMaxHeadDim << "]";
  AttentionParams p{};
  p.num_q_heads = static_cast<int>(num_q_heads);
  p.num_kv_heads = static_cast<int>(num_kv_heads);
  p.group = static_cast<int>(num_q_heads / num_kv_heads);
  p.head_dim = static_cast<int>(head_dim);
  p.scale = scale != 0.0f ? scale : 1.0f / std::sqrt(static_cast<float>(head_dim));
  return p;
}

constexpr int64_t kIntMax = std::numeric_limits<int>::max();

}  // namespace

AttentionParams check_attention(const char* op, Tensor q, Tensor k, Tensor v, const AttentionOptions& options) {
  PLM_CHECK(q.rank() == 4 && k.rank() == 4 && k.shape() == v.shape() && q.size(0) == k.size(0) &&
            q.size(3) == k.size(3))
      << op << ": q " << q.describe() << " must be (B, Sq, Hq, Dh), k " << k.describe() << " and v "
      << v.describe() << " (B, Skv, Hkv, Dh)";
  check_operands(op, q, k, v);
  for (int d = 0; d < 4; ++d) {
    PLM_CHECK(q.size(d) <= kIntMax && k.size(d) <= kIntMax) << op << ": dims of " << q.describe() << ", "
                                                            << k.describe() << " must fit int";
  }
  const int64_t num_q_heads = q.size(2);
  const int64_t num_kv_heads = k.size(2);
  AttentionParams p = head_params(op, num_q_heads, num_kv_heads, q.size(3), options.scale);
  // Rows (query, head) are counted in int and (batch, kv head) pairs index gridDim.y.
  PLM_CHECK(q.size(1) * num_q_heads <= kIntMax && q.size(0) * num_kv_heads <= kMaxGridY)
      << op << ": Sq * Hq (" << q.size(1) << " * " << num_q_heads << ") must fit int and B * Hkv ("
      << q.size(0) << " * " << num_kv_heads << ") be at most " << kMaxGridY;

  p.batch = static_cast<int>(q.size(0));
  p.q_len = static_cast<int>(q.size(1));
  p.kv_len_max = static_cast<int>(k.size(1));
  p.causal = options.causal;
  if (options.kv_lens.defined()) {
    check_ids(op, "kv_lens", options.kv_lens, Shape({q.size(0)}), q.device());
    p.kv_lens = static_cast<const int32_t*>(options.kv_lens.data());
  }
  if (options.segment_ids.defined()) {
    PLM_CHECK_EQ(q.size(1), k.size(1)) << op << ": segment_ids need Sq == Skv, q " << q.describe() << ", k "
                                       << k.describe();
    check_ids(op, "segment_ids", options.segment_ids, Shape({q.size(0), q.size(1)}), q.device());
    p.segment_ids = static_cast<const int32_t*>(options.segment_ids.data());
  }
  return p;
}

AttentionParams check_paged_attention(const char* op, Tensor q, Tensor k_cache, Tensor v_cache,
                                      const PagedAttentionBatch& batch) {
  PLM_CHECK(q.rank() == 3 && k_cache.rank() == 4 && k_cache.shape() == v_cache.shape() &&
            q.size(2) == k_cache.size(3))
      << op << ": q " << q.describe() << " must be (T, Hq, Dh), k_cache " << k_cache.describe() << " and v_cache "
      << v_cache.describe() << " (num_blocks, block_size, Hkv, Dh)";
  check_operands(op, q, k_cache, v_cache);
  PLM_CHECK(batch.block_tables.defined() && batch.block_tables.rank() == 2)
      << op << ": block_tables " << batch.block_tables.describe() << " must be (B, max_blocks)";
  const int64_t num_sequences = batch.block_tables.size(0), max_blocks = batch.block_tables.size(1);
  check_ids(op, "block_tables", batch.block_tables, Shape({num_sequences, max_blocks}), q.device());
  check_ids(op, "query_starts", batch.query_starts, Shape({num_sequences + 1}), q.device());
  check_ids(op, "kv_lens", batch.kv_lens, Shape({num_sequences}), q.device());
  const int64_t num_q_heads = q.size(1), num_kv_heads = k_cache.size(2), block_size = k_cache.size(1);
  AttentionParams p = head_params(op, num_q_heads, num_kv_heads, q.size(2), batch.scale);
  PLM_CHECK(0 <= batch.max_query_len && batch.max_query_len <= q.size(0))
      << op << ": max_query_len " << batch.max_query_len << " outside [0, T = " << q.size(0) << "]";
  PLM_CHECK(q.size(0) * num_q_heads <= kIntMax && max_blocks * block_size <= kIntMax &&
            num_sequences * num_kv_heads <= kMaxGridY)
      << op << ": T * Hq (" << q.size(0) << " * " << num_q_heads << ") and max_blocks * block_size (" << max_blocks
      << " * " << block_size << ") must fit int and B * Hkv (" << num_sequences << " * " << num_kv_heads
      << ") be at most " << kMaxGridY;
  p.batch = static_cast<int>(num_sequences);
  p.q_len = static_cast<int>(batch.max_query_len);
  p.kv_len_max = static_cast<int>(max_blocks * block_size);
  p.causal = true;
  p.kv_lens = static_cast<const int32_t*>(batch.kv_lens.data());
  p.query_starts = static_cast<const int32_t*>(batch.query_starts.data());
  p.block_tables = static_cast<const int32_t*>(batch.block_tables.data());
  p.max_blocks = static_cast<int>(max_blocks);
  p.block_size = static_cast<int>(block_size);
  return p;
}

void check_like(const char* op, const char* name, Tensor t, Tensor like) {
  PLM_CHECK(t.shape() == like.shape() && t.dtype() == like.dtype() && t.device() == like.device() &&
            t.is_contiguous() && vector_aligned(t))
      << op << ": " << name << " " << t.describe() << " must be contiguous, 16-byte aligned and like "
      << like.describe();
}

void check_lse(const char* op, Tensor lse, Tensor q) {
  const Shape expected({q.size(0), q.size(2), q.size(1)});
  PLM_CHECK(lse.shape() == expected && lse.dtype() == DType::kF32 && lse.device() == q.device() &&
            lse.is_contiguous())
      << op << ": lse " << lse.describe() << " must be f32" << expected.to_string() << " on "
      << q.device().to_string();
}

}  // namespace plm::cuda::attention_internal
