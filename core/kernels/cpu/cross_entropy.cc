// CPU pieces of the vocab-chunked cross-entropy: an online log-sum-exp over chunks of logits, the
// per-row loss, and the logits gradient of one chunk, on the vector rows of vector_kernels.h. Rows are
// independent; OpenMP runs over rows.
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/kernels/backends.h"
#include "core/kernels/cpu/checks.h"
#include "core/kernels/cpu/parallel.h"
#include "core/kernels/cpu/vector_kernels.h"

namespace plm::cpu {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// logits (N, C) f32 and targets (N) i32; returns N.
int64_t check_logits(const char* op, Tensor logits, Tensor targets) {
  check_tensor(op, "logits", logits, DType::kF32);
  check_rank(op, "logits (N, C)", logits, 2);
  check_tensor(op, "targets", targets, DType::kI32);
  check_shape(op, "targets", targets, {logits.size(0)});
  return logits.size(0);
}

// Column of the row's target inside a chunk starting at chunk_start, or -1 when it lies elsewhere.
int64_t target_in_chunk(int32_t target, int64_t chunk_start, int64_t chunk) {
  const int64_t local = static_cast<int64_t>(target) - chunk_start;
  return 0 <= local && local < chunk ? local : -1;
}

}  // namespace

void cross_entropy_chunk_forward(Tensor running_max, Tensor running_sum, Tensor target_logit, Tensor logits,
                                 Tensor targets, int64_t chunk_start, Stream) {
  const char* op = "cross_entropy_chunk_forward";
  const int64_t num_rows = check_logits(op, logits, targets);
  check_f32(op, "running_max", running_max, {num_rows});
  check_f32(op, "running_sum", running_sum, {num_rows});
  check_f32(op, "target_logit", target_logit, {num_rows});
  const int64_t chunk = logits.size(1);
  const float* logit_data = logits.data_as<float>();
  const int32_t* target_data = targets.data_as<int32_t>();
  float* max_data = running_max.data_as<float>();
  float* sum_data = running_sum.data_as<float>();
  float* target_logit_data = target_logit.data_as<float>();
  const VectorKernels& simd = vector_kernels(best_simd_isa());
#pragma omp parallel for if (logits.numel() >= kMinParallelWork)
  for (int64_t n = 0; n < num_rows; ++n) {
    const float* row = logit_data + n * chunk;
    const int64_t target = target_in_chunk(target_data[n], chunk_start, chunk);
    if (target >= 0) target_logit_data[n] = row[target];
    const float new_max = std::max(max_data[n], simd.row_max(row, chunk));
    if (new_max == kNegInf) continue;  // every logit so far is -inf: the sum stays 0
    // Rescale the running sum to the new max before adding this chunk's terms. One f32 accumulator over a
    // 128k-entry vocabulary drifts (each small term rounds the same way: the loss moved by 3e-5 relative
    // against PyTorch); the chunk's terms are summed across the vector lanes and the chunks in double.
    const double rescaled = static_cast<double>(sum_data[n]) * std::exp(static_cast<double>(max_data[n]) - new_max);
    max_data[n] = new_max;
    sum_data[n] = static_cast<float>(rescaled + simd.sum_exp(row, chunk, new_max));
  }
}

void cross_entropy_finalize(Tensor loss, Tensor lse, Tensor running_max, Tensor running_sum, Tensor target_logit,
                            Tensor targets, int32_t ignore_index, Stream) {
  const char* op = "cross_entropy_finalize";
  check_tensor(op, "targets", targets, DType::kI32);
  check_rank(op, "targets (N)", targets, 1);
  const int64_t num_rows = targets.size(0);
  check_f32(op, "loss", loss, {num_rows});
  check_f32(op, "lse", lse, {num_rows});
  check_f32(op, "running_max", running_max, {num_rows});
  check_f32(op, "running_sum", running_sum, {num_rows});
  check_f32(op, "target_logit", target_logit, {num_rows});
  const int32_t* target_data = targets.data_as<int32_t>();
  const float* max_data = running_max.data_as<float>();
  const float* sum_data = running_sum.data_as<float>();
  const float* target_logit_data = target_logit.data_as<float>();
  float* loss_data = loss.data_as<float>();
  float* lse_data = lse.data_as<float>();
#pragma omp parallel for if (num_rows >= kMinParallelWork)
  for (int64_t n = 0; n < num_rows; ++n) {
    lse_data[n] = max_data[n] + std::log(sum_data[n]);
    loss_data[n] = target_data[n] == ignore_index ? 0.0f : lse_data[n] - target_logit_data[n];
  }
}

void cross_entropy_chunk_backward(Tensor dlogits, Tensor logits, Tensor lse, Tensor targets, Tensor dloss,
                                  int64_t chunk_start, int32_t ignore_index, Stream) {
  const char* op = "cross_entropy_chunk_backward";
  const int64_t num_rows = check_logits(op, logits, targets);
  check_f32(op, "lse", lse, {num_rows});
  check_f32(op, "dloss", dloss, {num_rows});
  check_f32(op, "dlogits", dlogits, logits.shape());
  const int64_t chunk = logits.size(1);
  const float* logit_data = logits.data_as<float>();
  const float* lse_data = lse.data_as<float>();
  const int32_t* target_data = targets.data_as<int32_t>();
  const float* dloss_data = dloss.data_as<float>();
  float* dlogit_data = dlogits.data_as<float>();
  const VectorKernels& simd = vector_kernels(best_simd_isa());
  // Element-wise within a row, so dlogits may alias logits: dlogits = (softmax - onehot) dloss.
#pragma omp parallel for if (logits.numel() >= kMinParallelWork)
  for (int64_t n = 0; n < num_rows; ++n) {
    float* drow = dlogit_data + n * chunk;
    if (target_data[n] == ignore_index) {
      std::fill_n(drow, chunk, 0.0f);
      continue;
    }
    simd.scaled_exp(logit_data + n * chunk, drow, chunk, lse_data[n], dloss_data[n]);
    const int64_t target = target_in_chunk(target_data[n], chunk_start, chunk);
    if (target >= 0) drow[target] -= dloss_data[n];
  }
}

}  // namespace plm::cpu
