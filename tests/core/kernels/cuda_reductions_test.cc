// plm::cuda sum_rows (accumulating or not, into f32 or the input's dtype), sum, sum_squares and row_norms
// against the CPU oracle, f32 and bf16, on sizes past one block and past the first pass's grid; and their
// determinism.
#include <gtest/gtest.h>

#include <string>

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
using testing::Tolerance;

const int64_t kShapes[][2] = {{1, 1}, {7, 33}, {300, 129}};

TEST(CudaReductionsTest, SumRowsMatchesCpu) {
  PLM_SKIP_WITHOUT_CUDA();
  for (const auto& [rows, dim] : kShapes) {
    for (const DType dtype : kCudaTestDTypes) {
      for (const bool accumulate : {false, true}) {
        for (const DType out_dtype : {DType::kF32, dtype}) {
          const std::string label = dtype_label(std::to_string(rows) + "x" + std::to_string(dim) +
                                                    (accumulate ? "_acc_" : "_") + std::string(dtype_name(out_dtype)),
                                                dtype);
          SCOPED_TRACE(label);
          auto x = random_pair({rows, dim}, 1, dtype);
          auto out = random_pair({dim}, 2, out_dtype);
          cpu::sum_rows(out.host, x.host, accumulate);
          cuda::sum_rows(out.device, x.device, accumulate);
          EXPECT_TRUE(matches_cpu(out.device, out.host, out_dtype, label));
        }
      }
    }
  }
}

TEST(CudaReductionsTest, SumAndSumSquaresMatchCpu) {
  PLM_SKIP_WITHOUT_CUDA();
  // 300000 elements: more than kMaxReduceBlocks * 256 threads, so threads loop.
  for (const int64_t size : {1, 1000, 300000}) {
    for (const DType dtype : kCudaTestDTypes) {
      const std::string label = dtype_label(std::to_string(size), dtype);
      SCOPED_TRACE(label);
      auto x = random_pair({size}, 3, dtype);
      // The oracle sums in double, the GPU in f32 over per-thread runs: allow 1e-6 per element summed.
      const Tolerance tol{1e-6f * static_cast<float>(size), 1e-5f};
      OwnedTensor expected = cpu_output({1});
      OwnedTensor out = cuda_output({1}, DType::kF32);
      cpu::sum(expected, x.host);
      cuda::sum(out, x.device);
      EXPECT_TRUE(matches_cpu(out, expected, tol, "sum_" + label));
      cpu::sum_squares(expected, x.host);
      cuda::sum_squares(out, x.device);
      EXPECT_TRUE(matches_cpu(out, expected, tol, "sum_squares_" + label));
      OwnedTensor again = cuda_output({1}, DType::kF32);
      cuda::sum_squares(again, x.device);
      EXPECT_TRUE(testing::same_values(again, out));
    }
  }
}

TEST(CudaReductionsTest, RowNormsMatchCpu) {
  PLM_SKIP_WITHOUT_CUDA();
  for (const auto& [rows, dim] : kShapes) {
    for (const DType dtype : kCudaTestDTypes) {
      for (const DType out_dtype : {DType::kF32, dtype}) {
        const std::string label = dtype_label(
            std::to_string(rows) + "x" + std::to_string(dim) + "_" + std::string(dtype_name(out_dtype)), dtype);
        SCOPED_TRACE(label);
        auto x = random_pair({rows, dim}, 7, dtype);
        OwnedTensor expected = cpu_output({rows});
        OwnedTensor out = cuda_output({rows}, out_dtype);
        cpu::row_norms(expected, x.host);
        cuda::row_norms(out, x.device);
        EXPECT_TRUE(matches_cpu(out, expected, out_dtype, "row_norms_" + label));
      }
    }
  }
}

}  // namespace
}  // namespace plm
