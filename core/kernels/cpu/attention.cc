// CPU attention: the exact (non-flash) oracle, one query row at a time in fp32 with a max-subtracted
// softmax. Backward recomputes the probabilities from the saved lse. OpenMP runs over (batch, kv head) so
// the query heads sharing a kv head accumulate into dk/dv on one thread, without races.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/kernels/backends.h"
#include "core/kernels/cpu/checks.h"
#include "core/kernels/cpu/parallel.h"

namespace plm::cpu {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Sizes and masking inputs of one attention call, validated once.
struct AttentionGeometry {
  int64_t batch, q_len, kv_len, num_q_heads, num_kv_heads, head_dim;
  float scale;
  bool causal;
  const int32_t* kv_lens;      // (B) or null
  const int32_t* segment_ids;  // (B, S) or null

  int64_t group_size() const { return num_q_heads / num_kv_heads; }
  int64_t work() const { return batch * num_q_heads * q_len * kv_len * head_dim; }
  // Row offsets into q/out (B, Sq, Hq, Dh) and k/v (B, Skv, Hkv, Dh).
  int64_t q_row(int64_t b, int64_t i, int64_t h) const { return ((b * q_len + i) * num_q_heads + h) * head_dim; }
  int64_t kv_row(int64_t b, int64_t j, int64_t g) const { return ((b * kv_len + j) * num_kv_heads + g) * head_dim; }
  int64_t lse_index(int64_t b, int64_t h, int64_t i) const { return (b * num_q_heads + h) * q_len + i; }
};

// The keys query i of sequence b sees: j in [0, end), and with packed documents only its own segment.
struct VisibleKeys {
  int64_t end;
  const int32_t* segments;  // (S) of sequence b, or null
  int32_t segment;

  bool contains(int64_t j) const { return segments == nullptr || segments[j] == segment; }
};

VisibleKeys visible_keys(const AttentionGeometry& g, int64_t b, int64_t i) {
  const int64_t valid = g.kv_lens ? g.kv_lens[b] : g.kv_len;
  const int64_t position = valid - g.q_len + i;
  VisibleKeys keys{valid, nullptr, 0};
  if (g.causal) keys.end = std::clamp<int64_t>(position + 1, 0, valid);
  if (g.segment_ids) {
    keys.segments = g.segment_ids + b * g.kv_len;
    keys.segment = g.segment_ids[b * g.q_len + i];
  }
  return keys;
}

float dot(const float* a, const float* b, int64_t n) {
  float s = 0.0f;
  for (int64_t d = 0; d < n; ++d) s += a[d] * b[d];
  return s;
}

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

}  // namespace

void attention_forward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, const AttentionOptions& options, Stream) {
  const AttentionGeometry g = check_attention("attention_forward", q, k, v, lse, options);
  check_f32("attention_forward", "out", out, q.shape());
  const float* q_data = q.data_as<float>();
  const float* k_data = k.data_as<float>();
  const float* v_data = v.data_as<float>();
  float* out_data = out.data_as<float>();
  float* lse_data = lse.defined() ? lse.data_as<float>() : nullptr;

#pragma omp parallel for collapse(2) if (g.work() >= kMinParallelWork)
  for (int64_t b = 0; b < g.batch; ++b) {
    for (int64_t h = 0; h < g.num_q_heads; ++h) {
      const int64_t kv_head = h / g.group_size();
      std::vector<float> scores(static_cast<size_t>(g.kv_len));
      for (int64_t i = 0; i < g.q_len; ++i) {
        const VisibleKeys keys = visible_keys(g, b, i);
        const float* q_row = q_data + g.q_row(b, i, h);
        float* out_row = out_data + g.q_row(b, i, h);
        float max_score = kNegInf;
        for (int64_t j = 0; j < keys.end; ++j) {
          if (!keys.contains(j)) continue;
          scores[j] = g.scale * dot(q_row, k_data + g.kv_row(b, j, kv_head), g.head_dim);
          max_score = std::max(max_score, scores[j]);
        }
        std::fill(out_row, out_row + g.head_dim, 0.0f);
        if (max_score == kNegInf) {  // no visible key
          if (lse_data) lse_data[g.lse_index(b, h, i)] = kNegInf;
          continue;
        }
        float sum = 0.0f;
        for (int64_t j = 0; j < keys.end; ++j) {
          if (!keys.contains(j)) continue;
          const float p = std::exp(scores[j] - max_score);
          sum += p;
          const float* v_row = v_data + g.kv_row(b, j, kv_head);
          for (int64_t d = 0; d < g.head_dim; ++d) out_row[d] += p * v_row[d];
        }
        for (int64_t d = 0; d < g.head_dim; ++d) out_row[d] /= sum;
        if (lse_data) lse_data[g.lse_index(b, h, i)] = max_score + std::log(sum);
      }
    }
  }
}

void attention_backward(Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k, Tensor v, Tensor out,
                        Tensor lse, const AttentionOptions& options, Stream) {
  const char* op = "attention_backward";
  PLM_CHECK(lse.defined()) << op << ": needs the lse saved by attention_forward";
  const AttentionGeometry g = check_attention(op, q, k, v, lse, options);
  check_f32(op, "dq", dq, q.shape());
  check_f32(op, "dout", dout, q.shape());
  check_f32(op, "out", out, q.shape());
  check_f32(op, "dk", dk, k.shape());
  check_f32(op, "dv", dv, k.shape());
  const float* q_data = q.data_as<float>();
  const float* k_data = k.data_as<float>();
  const float* v_data = v.data_as<float>();
  const float* out_data = out.data_as<float>();
  const float* dout_data = dout.data_as<float>();
  const float* lse_data = lse.data_as<float>();
  float* dq_data = dq.data_as<float>();
  float* dk_data = dk.data_as<float>();
  float* dv_data = dv.data_as<float>();

#pragma omp parallel for collapse(2) if (g.work() >= kMinParallelWork)
  for (int64_t b = 0; b < g.batch; ++b) {
    for (int64_t kv_head = 0; kv_head < g.num_kv_heads; ++kv_head) {
      for (int64_t j = 0; j < g.kv_len; ++j) {
        std::fill_n(dk_data + g.kv_row(b, j, kv_head), g.head_dim, 0.0f);
        std::fill_n(dv_data + g.kv_row(b, j, kv_head), g.head_dim, 0.0f);
      }
      for (int64_t h = kv_head * g.group_size(); h < (kv_head + 1) * g.group_size(); ++h) {
        for (int64_t i = 0; i < g.q_len; ++i) {
          const VisibleKeys keys = visible_keys(g, b, i);
          const float row_lse = lse_data[g.lse_index(b, h, i)];
          const float* q_row = q_data + g.q_row(b, i, h);
          const float* dout_row = dout_data + g.q_row(b, i, h);
          float* dq_row = dq_data + g.q_row(b, i, h);
          std::fill_n(dq_row, g.head_dim, 0.0f);
          if (row_lse == kNegInf) continue;  // saw no key: no gradient
          // delta = dout . out = sum_j P_j dP_j, the row term of the softmax backward.
          const float delta = dot(dout_row, out_data + g.q_row(b, i, h), g.head_dim);
          for (int64_t j = 0; j < keys.end; ++j) {
            if (!keys.contains(j)) continue;
            const float* k_row = k_data + g.kv_row(b, j, kv_head);
            const float* v_row = v_data + g.kv_row(b, j, kv_head);
            const float p = std::exp(g.scale * dot(q_row, k_row, g.head_dim) - row_lse);
            const float dscore = p * (dot(dout_row, v_row, g.head_dim) - delta);
            float* dk_row = dk_data + g.kv_row(b, j, kv_head);
            float* dv_row = dv_data + g.kv_row(b, j, kv_head);
            for (int64_t d = 0; d < g.head_dim; ++d) {
              dq_row[d] += dscore * k_row[d];
              dk_row[d] += g.scale * dscore * q_row[d];
              dv_row[d] += p * dout_row[d];
            }
          }
          for (int64_t d = 0; d < g.head_dim; ++d) dq_row[d] *= g.scale;
        }
      }
    }
  }
}

}  // namespace plm::cpu
