// The plain CPU attention loops of attention_reference.h, one query row at a time in fp32: the exact (non-flash)
// forward with a max-subtracted softmax, and the backward, which recomputes the probabilities from the saved
// lse. The model runs the blocked attention_blocked.cc and attention_backward.cc, tested against these. OpenMP
// runs over (batch, kv head) so the query heads sharing a kv head accumulate into dk/dv on one thread.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/kernels/cpu/attention_geometry.h"
#include "core/kernels/cpu/attention_reference.h"
#include "core/kernels/cpu/checks.h"
#include "core/kernels/cpu/parallel.h"

namespace plm::cpu {

namespace {

float dot(const float* a, const float* b, int64_t n) {
  float s = 0.0f;
  for (int64_t d = 0; d < n; ++d) s += a[d] * b[d];
  return s;
}

}  // namespace

void attention_forward_reference(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v,
                                 const AttentionOptions& options, Stream) {
  const AttentionGeometry g = check_attention("attention_forward_reference", q, k, v, lse, options);
  check_f32("attention_forward_reference", "out", out, q.shape());
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
        float max_score = kAttentionNegInf;
        for (int64_t j = 0; j < keys.end; ++j) {
          if (!keys.contains(j)) continue;
          scores[j] = g.scale * dot(q_row, k_data + g.kv_row(b, j, kv_head), g.head_dim);
          max_score = std::max(max_score, scores[j]);
        }
        std::fill(out_row, out_row + g.head_dim, 0.0f);
        if (max_score == kAttentionNegInf) {  // no visible key
          if (lse_data) lse_data[g.lse_index(b, h, i)] = kAttentionNegInf;
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

void attention_backward_reference(Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k, Tensor v,
                                  Tensor out, Tensor lse, const AttentionOptions& options, Stream) {
  const char* op = "attention_backward_reference";
  const AttentionGeometry g = check_attention_backward(op, dq, dk, dv, dout, q, k, v, out, lse, options);
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
          if (row_lse == kAttentionNegInf) continue;  // saw no key: no gradient
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
