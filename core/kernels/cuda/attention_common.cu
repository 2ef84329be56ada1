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

}  // namespace

AttentionParams check_attention(const char* op, Tensor q, Tensor k, Tensor v, const AttentionOptions& options) {
  PLM_CHECK(q.rank() == 4 && k.rank() == 4 && k.shape() == v.shape() && q.size(0) == k.size(0) &&
            q.size(3) == k.size(3))
      << op << ": q " << q.describe() << " must be (B, Sq, Hq, Dh), k " << k.describe() << " and v "
      << v.describe() << " (B, Skv, Hkv, Dh)";
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
  constexpr int64_t kIntMax = std::numeric_limits<int>::max();
  for (int d = 0; d < 4; ++d) {
    PLM_CHECK(q.size(d) <= kIntMax && k.size(d) <= kIntMax) << op << ": dims of " << q.describe() << ", "
                                                            << k.describe() << " must fit int";
  }
  const int64_t num_q_heads = q.size(2);
  const int64_t num_kv_heads = k.size(2);
  const int64_t head_dim = q.size(3);
  PLM_CHECK(num_kv_heads > 0 && num_q_heads % num_kv_heads == 0)
      << op << ": Hq (" << num_q_heads << ") must be a multiple of Hkv (" << num_kv_heads << ")";
  PLM_CHECK(head_dim > 0 && head_dim <= kMaxHeadDim && head_dim % 8 == 0)
      << op << ": head_dim " << head_dim << " must be a multiple of 8 in [8, " << kMaxHeadDim << "]";
  // Rows (query, head) are counted in int and (batch, kv head) pairs index gridDim.y.
  PLM_CHECK(q.size(1) * num_q_heads <= kIntMax && q.size(0) * num_kv_heads <= kMaxGridY)
      << op << ": Sq * Hq (" << q.size(1) << " * " << num_q_heads << ") must fit int and B * Hkv ("
      << q.size(0) << " * " << num_kv_heads << ") be at most " << kMaxGridY;

  AttentionParams p{};
  p.batch = static_cast<int>(q.size(0));
  p.q_len = static_cast<int>(q.size(1));
  p.kv_len_max = static_cast<int>(k.size(1));
  p.num_q_heads = static_cast<int>(num_q_heads);
  p.num_kv_heads = static_cast<int>(num_kv_heads);
  p.group = static_cast<int>(num_q_heads / num_kv_heads);
  p.head_dim = static_cast<int>(head_dim);
  p.scale = options.scale != 0.0f ? options.scale : 1.0f / std::sqrt(static_cast<float>(head_dim));
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
