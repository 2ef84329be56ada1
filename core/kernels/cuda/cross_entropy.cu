// The pieces of the vocab-chunked cross-entropy on CUDA: an online log-sum-exp over one logits chunk (one
// block per row), the per-row finalisation, and the chunk's dlogits. Logits are f32 or bf16; every
// per-row statistic (running max/sum, target logit, lse, loss, dloss) is f32.
#include "core/kernels/backends.h"
#include "core/kernels/cuda/cuda_common.cuh"

namespace plm::cuda {
namespace {

// logits (N, C) for vocab ids [chunk_start, chunk_start + C); running_max, running_sum, target_logit,
// targets: (N). Grid N, block kThreads.
template <typename T>
__global__ void cross_entropy_chunk_forward_kernel(float* running_max, float* running_sum, float* target_logit,
                                                   const T* logits, const int32_t* targets, int64_t chunk_start,
                                                   int64_t chunk_size) {
  const int64_t row = blockIdx.x;
  const T* row_logits = logits + row * chunk_size;
  float chunk_max = MaxOp::kIdentity;
  for (int64_t c = threadIdx.x; c < chunk_size; c += blockDim.x) chunk_max = fmaxf(chunk_max, to_float(row_logits[c]));
  chunk_max = block_max(chunk_max);
  const float old_max = running_max[row];
  const float new_max = fmaxf(old_max, chunk_max);
  float chunk_sum = 0.0f;
  for (int64_t c = threadIdx.x; c < chunk_size; c += blockDim.x) chunk_sum += expf(to_float(row_logits[c]) - new_max);
  chunk_sum = block_sum(chunk_sum);
  if (threadIdx.x != 0) return;
  // All logits so far -inf: keep max -inf and sum 0 rather than exp(-inf - -inf) = NaN.
  if (new_max != MaxOp::kIdentity) {
    running_sum[row] = running_sum[row] * expf(old_max - new_max) + chunk_sum;
    running_max[row] = new_max;
  }
  const int64_t target = int64_t{targets[row]} - chunk_start;
  if (target >= 0 && target < chunk_size) target_logit[row] = to_float(row_logits[target]);
}

struct CrossEntropyFinalize {
  float* loss;
  float* lse;
  const float* running_max;
  const float* running_sum;
  const float* target_logit;
  const int32_t* targets;
  int32_t ignore_index;
  __device__ void operator()(int64_t row) const {
    const float row_lse = running_max[row] + logf(running_sum[row]);
    lse[row] = row_lse;
    loss[row] = targets[row] == ignore_index ? 0.0f : row_lse - target_logit[row];
  }
};

// Index i = (row, c) over (N, C). In place (dlogits == logits) is safe: one thread per element.
template <typename T>
struct CrossEntropyChunkBackward {
  T* dlogits;
  const T* logits;
  const float* lse;
  const int32_t* targets;
  const float* dloss;
  int64_t chunk_start, chunk_size;
  int32_t ignore_index;
  __device__ void operator()(int64_t i) const {
    const int64_t row = i / chunk_size;
    const int32_t target = targets[row];
    if (target == ignore_index) {
      dlogits[i] = from_float<T>(0.0f);
      return;
    }
    const float one_hot = (chunk_start + i % chunk_size == target) ? 1.0f : 0.0f;
    dlogits[i] = from_float<T>((expf(to_float(logits[i]) - lse[row]) - one_hot) * dloss[row]);
  }
};

// Every tensor is (N) f32 except targets (N) i32.
void check_row_stats(const char* op, const Tensor& targets, std::initializer_list<Tensor> stats) {
  check_cuda_tensors(op, stats);
  check_cuda_tensors(op, {targets});
  check_dtype(op, targets, DType::kI32);
  PLM_CHECK(targets.rank() == 1) << op << ": wants targets (N), got " << targets.describe();
  for (const Tensor& stat : stats) {
    check_dtype(op, stat, DType::kF32);
    PLM_CHECK(stat.rank() == 1 && stat.size(0) == targets.size(0))
        << op << ": wants (N) f32 row statistics with N = " << targets.size(0) << ", got " << stat.describe();
  }
}

void check_logits(const char* op, const Tensor& logits, const Tensor& targets) {
  check_cuda_tensors(op, {logits});
  PLM_CHECK(logits.rank() == 2 && logits.size(0) == targets.size(0))
      << op << ": wants logits (N, C) with N = " << targets.size(0) << ", got " << logits.describe();
}

}  // namespace

void cross_entropy_chunk_forward(Tensor running_max, Tensor running_sum, Tensor target_logit, Tensor logits,
                                 Tensor targets, int64_t chunk_start, Stream s) {
  const char* op = "cross_entropy_chunk_forward";
  check_row_stats(op, targets, {running_max, running_sum, target_logit});
  check_logits(op, logits, targets);
  const int64_t num_rows = logits.size(0);
  if (num_rows == 0) return;
  dispatch_float(logits.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    cross_entropy_chunk_forward_kernel<<<row_grid(op, num_rows), kThreads, 0, as_cuda_stream(s)>>>(
        data_ptr<float>(running_max), data_ptr<float>(running_sum), data_ptr<float>(target_logit),
        data_ptr<const T>(logits), data_ptr<const int32_t>(targets), chunk_start, logits.size(1));
    PLM_CUDA_CHECK_LAUNCH();
  });
}

void cross_entropy_finalize(Tensor loss, Tensor lse, Tensor running_max, Tensor running_sum, Tensor target_logit,
                            Tensor targets, int32_t ignore_index, Stream s) {
  check_row_stats("cross_entropy_finalize", targets, {loss, lse, running_max, running_sum, target_logit});
  for_each_index(targets.numel(),
                 CrossEntropyFinalize{data_ptr<float>(loss), data_ptr<float>(lse), data_ptr<const float>(running_max),
                                      data_ptr<const float>(running_sum), data_ptr<const float>(target_logit),
                                      data_ptr<const int32_t>(targets), ignore_index},
                 s);
}

void cross_entropy_chunk_backward(Tensor dlogits, Tensor logits, Tensor lse, Tensor targets, Tensor dloss,
                                  int64_t chunk_start, int32_t ignore_index, Stream s) {
  const char* op = "cross_entropy_chunk_backward";
  check_row_stats(op, targets, {lse, dloss});
  check_logits(op, logits, targets);
  check_elementwise_tensors(op, {dlogits, logits});
  dispatch_float(logits.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    for_each_index(logits.numel(),
                   CrossEntropyChunkBackward<T>{data_ptr<T>(dlogits), data_ptr<const T>(logits),
                                                data_ptr<const float>(lse), data_ptr<const int32_t>(targets),
                                                data_ptr<const float>(dloss), chunk_start, logits.size(1),
                                                ignore_index},
                   s);
  });
}

}  // namespace plm::cuda
