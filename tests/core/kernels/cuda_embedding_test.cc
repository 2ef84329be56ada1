// plm::cuda::embedding_forward/backward against the CPU oracle (f32 and bf16 tables, a vocab shard with
// ids on both sides of it, repeated ids), and the backward's determinism.
#include <gtest/gtest.h>

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
using testing::random_ids;
using testing::random_pair;
using testing::to_cuda;

constexpr int64_t kVocab = 37;
constexpr int64_t kVocabStart = 100;

TEST(CudaEmbeddingTest, ForwardMatchesCpu) {
  PLM_SKIP_WITHOUT_CUDA();
  for (const int64_t dim : {1, 259}) {
    // Ids from 90 to 146 cover the shard [100, 137) and both sides of it.
    OwnedTensor ids = random_ids({301}, 1, 90, kVocabStart + kVocab + 10);
    OwnedTensor ids_cuda = to_cuda(ids);
    for (const DType dtype : kCudaTestDTypes) {
      SCOPED_TRACE(dtype_label("dim_" + std::to_string(dim), dtype));
      auto table = random_pair({kVocab, dim}, 2, dtype);
      OwnedTensor expected = cpu_output({301, dim});
      cpu::embedding_forward(expected, ids, table.host, kVocabStart);
      OwnedTensor out = cuda_output({301, dim}, dtype);
      cuda::embedding_forward(out, ids_cuda, table.device, kVocabStart);
      EXPECT_EQ(testing::max_abs_diff(out, expected), 0.0f);  // a copy: exact
    }
  }
}

TEST(CudaEmbeddingTest, BackwardAccumulatesLikeCpu) {
  PLM_SKIP_WITHOUT_CUDA();
  const int64_t num_ids = 301, dim = 259;
  // About 8 occurrences per id, some outside the shard.
  OwnedTensor ids = random_ids({num_ids}, 3, 95, kVocabStart + kVocab + 5);
  OwnedTensor ids_cuda = to_cuda(ids);
  for (const DType dtype : kCudaTestDTypes) {
    SCOPED_TRACE(dtype_name(dtype));
    auto dtable = random_pair({kVocab, dim}, 4, dtype);  // nonzero start: dtable accumulates
    auto dout = random_pair({num_ids, dim}, 5, dtype);
    cpu::embedding_backward(dtable.host, ids, dout.host, kVocabStart);
    cuda::embedding_backward(dtable.device, ids_cuda, dout.device, kVocabStart);
    EXPECT_TRUE(matches_cpu(dtable.device, dtable.host, dtype, dtype_label("dtable", dtype)));
  }
}

TEST(CudaEmbeddingTest, BackwardIsDeterministic) {
  PLM_SKIP_WITHOUT_CUDA();
  // 4096 tokens over 8 ids: long runs of repeated ids, where atomics would make the sum order vary.
  OwnedTensor ids = to_cuda(random_ids({4096}, 6, 0, 8));
  for (const DType dtype : kCudaTestDTypes) {
    SCOPED_TRACE(dtype_name(dtype));
    auto dout = random_pair({4096, 67}, 7, dtype);
    OwnedTensor first = cuda_output({8, 67}, dtype);
    OwnedTensor second = cuda_output({8, 67}, dtype);
    cuda::fill(first, 0.0f);
    cuda::fill(second, 0.0f);
    cuda::embedding_backward(first, ids, dout.device, 0);
    cuda::embedding_backward(second, ids, dout.device, 0);
    EXPECT_TRUE(testing::same_values(first, second));
  }
}

}  // namespace
}  // namespace plm
