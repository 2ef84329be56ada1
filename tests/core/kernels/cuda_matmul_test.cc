// CUDA matmul (cuBLASLt) against the CPU oracle: f32 and bf16, every combination of trans_a, trans_b, bias,
// alpha/beta and batching (none, batched b, 2-D b shared by the batch, folded or not), odd sizes, K == 0,
// operands at odd addresses. bf16 inputs are given to the CPU as the same values in f32.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/kernels/backends.h"
#include "tests/core/kernels/reference_check.h"
#include "tests/core/test_util.h"

namespace plm {
namespace {

using testing::random_tensor;
using testing::tensor_from;
using testing::to_vector;

enum class Batching { kNone, kBatched, kSharedB };

struct MatmulCase {
  DType dtype;
  Batching batching;
  bool trans_a, trans_b, bias;
  float alpha, beta;
  int64_t m = 37, n = 29, k = 43;
};

std::string case_name(const MatmulCase& c) {
  const char* batching[] = {"plain", "batched", "shared_b"};
  return std::string(dtype_name(c.dtype)) + "_" + batching[static_cast<int>(c.batching)] +
         (c.trans_a ? "_ta" : "") + (c.trans_b ? "_tb" : "") + (c.bias ? "_bias" : "") +
         (c.beta != 0.0f ? "_beta" : "") + "_" + std::to_string(c.m) + "x" + std::to_string(c.n) + "x" +
         std::to_string(c.k);
}

// The same values in f32 on the CPU.
OwnedTensor as_f32(Tensor t) { return tensor_from(t.shape(), to_vector(t)); }

Shape with_batch(const std::vector<int64_t>& batch, int64_t rows, int64_t cols) {
  Shape s(batch.begin(), batch.end());
  s.push_back(rows);
  s.push_back(cols);
  return s;
}

// Tolerances: f32 differs from the CPU only by summation order; bf16 also by the rounding of c.
float tolerance(DType dtype) { return dtype == DType::kF32 ? 1e-4f : 2e-2f; }

// Runs c = alpha op(a) op(b) + beta c + bias on both backends and compares; `a_offset_rows` places a one
// or more rows into a larger buffer, so its address is only as aligned as a row of K elements.
void expect_matches_cpu(const MatmulCase& c, uint64_t seed, int64_t a_offset_rows = 0) {
  const std::vector<int64_t> batch =
      c.batching == Batching::kNone ? std::vector<int64_t>{} : std::vector<int64_t>{2, 3};
  const Shape a_shape = c.trans_a ? with_batch(batch, c.k, c.m) : with_batch(batch, c.m, c.k);
  const std::vector<int64_t> b_batch = c.batching == Batching::kBatched ? batch : std::vector<int64_t>{};
  const Shape b_shape = c.trans_b ? with_batch(b_batch, c.n, c.k) : with_batch(b_batch, c.k, c.n);
  const Shape c_shape = with_batch(batch, c.m, c.n);

  const OwnedTensor a = random_tensor(a_shape, seed, -1.0f, 1.0f, c.dtype);
  const OwnedTensor b = random_tensor(b_shape, seed + 1, -1.0f, 1.0f, c.dtype);
  const OwnedTensor c0 = random_tensor(c_shape, seed + 2, -1.0f, 1.0f, c.dtype);
  const OwnedTensor bias = random_tensor({c.n}, seed + 3, -1.0f, 1.0f, c.dtype);

  OwnedTensor expected = as_f32(c0);
  const OwnedTensor bias_f32 = as_f32(bias);
  MatmulOptions cpu_options{c.trans_a, c.trans_b, c.alpha, c.beta, c.bias ? Tensor(bias_f32) : Tensor()};
  cpu::matmul(expected, as_f32(a), as_f32(b), cpu_options);

  const Device gpu = Device::cuda(0);
  // a sits a_offset_rows rows into its buffer (same total size trick for every batching).
  const int64_t a_row = a_shape[-1];
  OwnedTensor a_buffer({a.numel() + a_offset_rows * a_row}, c.dtype, gpu);
  const Tensor a_gpu = a_buffer.view().slice(0, a_offset_rows * a_row, a_buffer.numel()).reshape(a_shape);
  copy_tensor(a_gpu, a);
  const OwnedTensor b_gpu = to_device(b, gpu);
  const OwnedTensor c_gpu = to_device(c0, gpu);
  const OwnedTensor bias_gpu = to_device(bias, gpu);
  MatmulOptions options{c.trans_a, c.trans_b, c.alpha, c.beta, c.bias ? Tensor(bias_gpu) : Tensor()};
  cuda::matmul(c_gpu, a_gpu, b_gpu, options);
  cuda_synchronize_device();

  const float tol = tolerance(c.dtype);
  EXPECT_TRUE(testing::close_to_reference(c_gpu, testing::to_doubles(expected), tol, tol,
                                          "max_error_" + case_name(c)))
      << case_name(c);
}

TEST(CudaMatmul, EveryOptionCombinationMatchesCpu) {
  PLM_SKIP_WITHOUT_CUDA();
  uint64_t seed = 100;
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    for (Batching batching : {Batching::kNone, Batching::kBatched, Batching::kSharedB}) {
      for (bool trans_a : {false, true}) {
        for (bool trans_b : {false, true}) {
          for (bool bias : {false, true}) {
            for (float beta : {0.0f, 0.5f}) {
              const float alpha = beta == 0.0f ? 1.0f : 1.5f;
              expect_matches_cpu({dtype, batching, trans_a, trans_b, bias, alpha, beta}, seed);
              seed += 10;
            }
          }
        }
      }
    }
  }
}

TEST(CudaMatmul, LargerShapesMatchCpu) {
  PLM_SKIP_WITHOUT_CUDA();
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    MatmulCase linear{dtype, Batching::kSharedB, false, true, true, 1.0f, 0.0f, 257, 384, 512};  // x W^T + b
    expect_matches_cpu(linear, 7);
    MatmulCase weight_grad{dtype, Batching::kNone, true, false, false, 1.0f, 1.0f, 384, 96, 513};  // dW += dy^T x
    expect_matches_cpu(weight_grad, 8);
  }
}

TEST(CudaMatmul, OperandsAtOddAddressesMatchCpu) {
  PLM_SKIP_WITHOUT_CUDA();
  // K = 43: one row in, a bf16 a is only 2-byte aligned and an f32 a 4-byte aligned.
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    for (bool trans_a : {false, true}) {
      expect_matches_cpu({dtype, Batching::kNone, trans_a, false, true, 1.0f, 0.0f}, 31, 1);
      expect_matches_cpu({dtype, Batching::kBatched, trans_a, true, false, 1.0f, 0.5f}, 37, 1);
    }
  }
}

TEST(CudaMatmul, EmptyProductScalesCAndAddsBias) {
  PLM_SKIP_WITHOUT_CUDA();
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    for (bool bias : {false, true}) {
      for (float beta : {0.0f, 0.5f}) {
        MatmulCase c{dtype, Batching::kBatched, false, false, bias, 2.0f, beta, 5, 7, 0};
        expect_matches_cpu(c, 51);
      }
    }
  }
}

TEST(CudaMatmul, EmptyOutputIsANoOp) {
  PLM_SKIP_WITHOUT_CUDA();
  const Device gpu = Device::cuda(0);
  const OwnedTensor a({0, 4}, DType::kF32, gpu), b({4, 3}, DType::kF32, gpu), c({0, 3}, DType::kF32, gpu);
  cuda::matmul(c, a, b);
  cuda_synchronize_device();
}

TEST(CudaMatmul, RejectsMixedDtypes) {
  // Checks run before any CUDA call, so this needs no GPU: the views point at no real memory.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  void* fake = reinterpret_cast<void*>(uintptr_t{1} << 20);
  const Device gpu = Device::cuda(0);
  const Tensor c(fake, {3, 6}, DType::kF32, gpu), a(fake, {3, 4}, DType::kF32, gpu),
      b(fake, {4, 6}, DType::kBF16, gpu);
  EXPECT_DEATH(cuda::matmul(c, a, b), "matmul \\(CUDA\\): a, b, c must all be f32 or all bf16");
}

TEST(CudaMatmul, RejectsMismatchedShapes) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  void* fake = reinterpret_cast<void*>(uintptr_t{1} << 20);
  const Device gpu = Device::cuda(0);
  const Tensor c(fake, {3, 6}, DType::kF32, gpu), a(fake, {3, 4}, DType::kF32, gpu),
      b(fake, {5, 6}, DType::kF32, gpu);
  EXPECT_DEATH(cuda::matmul(c, a, b), "gives \\(3, 4\\) x \\(5, 6\\)");
}

}  // namespace
}  // namespace plm
