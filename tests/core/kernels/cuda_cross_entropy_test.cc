// plm::cuda cross-entropy pieces against the CPU oracle, f32 and bf16 logits: the online log-sum-exp over
// uneven vocab chunks, the finalisation with ignored rows, and each chunk's dlogits.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "core/kernels/backends.h"
#include "tests/core/kernels/cuda_test_util.h"
#include "tests/core/test_util.h"

namespace plm {
namespace {

using testing::cpu_output;
using testing::cuda_output;
using testing::dtype_label;
using testing::kCudaTestDTypes;
using testing::matches_cpu;
using testing::random_pair;
using testing::to_cuda;

constexpr int32_t kIgnoreIndex = -100;
constexpr int64_t kRows = 9, kVocab = 1000, kChunk = 300;  // chunks of 300, 300, 300, 100

// Columns [start, end) of the CPU f32 matrix x (rows, cols), as a contiguous CPU f32 tensor.
OwnedTensor columns(Tensor x, int64_t start, int64_t end) {
  const std::vector<float> all = testing::to_vector(x);
  const int64_t rows = x.size(0), cols = x.size(1);
  std::vector<float> part;
  for (int64_t r = 0; r < rows; ++r) {
    part.insert(part.end(), all.begin() + r * cols + start, all.begin() + r * cols + end);
  }
  return testing::tensor_from({rows, end - start}, part);
}

OwnedTensor filled(float value) { return testing::tensor_from({kRows}, std::vector<float>(kRows, value)); }

TEST(CudaCrossEntropyTest, ChunkedLossAndGradientMatchCpu) {
  PLM_SKIP_WITHOUT_CUDA();
  OwnedTensor targets = testing::random_ids({kRows}, 1, 0, kVocab);
  targets.data_as<int32_t>()[2] = kIgnoreIndex;
  targets.data_as<int32_t>()[5] = kIgnoreIndex;
  OwnedTensor targets_cuda = to_cuda(targets);
  for (const DType dtype : kCudaTestDTypes) {
    SCOPED_TRACE(dtype_name(dtype));
    auto logits = random_pair({kRows, kVocab}, 2, dtype, -10.0f, 10.0f);
    auto dloss = random_pair({kRows}, 3, DType::kF32);
    // Running statistics start at max -inf, sum 0, target logit 0 on both sides.
    OwnedTensor max_cpu = filled(-std::numeric_limits<float>::infinity()), sum_cpu = filled(0.0f);
    OwnedTensor target_logit_cpu = filled(0.0f);
    OwnedTensor max_cuda = to_cuda(max_cpu), sum_cuda = to_cuda(sum_cpu), target_logit_cuda = to_cuda(target_logit_cpu);
    for (int64_t start = 0; start < kVocab; start += kChunk) {
      const int64_t end = std::min(start + kChunk, kVocab);
      OwnedTensor chunk = columns(logits.host, start, end);
      cpu::cross_entropy_chunk_forward(max_cpu, sum_cpu, target_logit_cpu, chunk, targets, start);
      cuda::cross_entropy_chunk_forward(max_cuda, sum_cuda, target_logit_cuda, testing::to_cuda_as(chunk, dtype),
                                        targets_cuda, start);
    }
    // Statistics are f32 from identical inputs: compared at f32 tolerance whatever the logits' dtype.
    EXPECT_TRUE(matches_cpu(max_cuda, max_cpu, DType::kF32, dtype_label("running_max", dtype)));
    EXPECT_TRUE(matches_cpu(sum_cuda, sum_cpu, DType::kF32, dtype_label("running_sum", dtype)));
    EXPECT_TRUE(matches_cpu(target_logit_cuda, target_logit_cpu, DType::kF32, dtype_label("target_logit", dtype)));

    OwnedTensor loss_cpu = cpu_output({kRows}), lse_cpu = cpu_output({kRows});
    cpu::cross_entropy_finalize(loss_cpu, lse_cpu, max_cpu, sum_cpu, target_logit_cpu, targets, kIgnoreIndex);
    OwnedTensor loss = cuda_output({kRows}, DType::kF32), lse = cuda_output({kRows}, DType::kF32);
    cuda::cross_entropy_finalize(loss, lse, max_cuda, sum_cuda, target_logit_cuda, targets_cuda, kIgnoreIndex);
    EXPECT_TRUE(matches_cpu(loss, loss_cpu, DType::kF32, dtype_label("loss", dtype)));
    EXPECT_TRUE(matches_cpu(lse, lse_cpu, DType::kF32, dtype_label("lse", dtype)));
    EXPECT_EQ(testing::to_vector(loss)[2], 0.0f);

    for (int64_t start = 0; start < kVocab; start += kChunk) {
      const int64_t end = std::min(start + kChunk, kVocab);
      OwnedTensor chunk = columns(logits.host, start, end);
      OwnedTensor dlogits_cpu = cpu_output(chunk.shape());
      cpu::cross_entropy_chunk_backward(dlogits_cpu, chunk, lse_cpu, targets, dloss.host, start, kIgnoreIndex);
      OwnedTensor dlogits = cuda_output(chunk.shape(), dtype);
      cuda::cross_entropy_chunk_backward(dlogits, testing::to_cuda_as(chunk, dtype), lse, targets_cuda, dloss.device,
                                         start, kIgnoreIndex);
      EXPECT_TRUE(matches_cpu(dlogits, dlogits_cpu, dtype, dtype_label("dlogits_" + std::to_string(start), dtype)));
    }
  }
}

}  // namespace
}  // namespace plm
