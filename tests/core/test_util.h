// Shared helpers for kernel tests: seeded random tensors, host copies, closeness checks, central finite
// differences, and the skip-when-no-GPU macro (a skip is never a pass).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "core/cuda/runtime.h"
#include "core/tensor.h"

namespace plm::testing {

// Uniform in [lo, hi), deterministic for a seed. dtype f32, bf16 or f16 (values rounded to it).
OwnedTensor random_tensor(Shape shape, uint64_t seed, float lo = -1.0f, float hi = 1.0f,
                          DType dtype = DType::kF32);
// Uniform integers in [lo, hi), i32.
OwnedTensor random_ids(Shape shape, uint64_t seed, int32_t lo, int32_t hi);
// A CPU tensor holding `values` with `shape` (f32, or i32 for the int overload).
OwnedTensor tensor_from(Shape shape, const std::vector<float>& values);
OwnedTensor tensor_from(Shape shape, const std::vector<int32_t>& values);

// Element values as float (any float dtype, i32), copied from any device.
std::vector<float> to_vector(Tensor t);

// |actual - expected| <= atol + rtol * |expected| elementwise; the message names the worst element.
::testing::AssertionResult all_close(Tensor actual, Tensor expected, float atol, float rtol = 0.0f);
::testing::AssertionResult all_close(Tensor actual, const std::vector<double>& expected, double atol,
                                     double rtol = 0.0);

float max_abs_diff(Tensor a, Tensor b);

// Central difference d loss / d x[i] for every element of the f32 CPU tensor x, in double:
// (loss(x + h) - loss(x - h)) / 2h, restoring x afterwards.
std::vector<double> finite_difference(Tensor x, const std::function<double()>& loss, float h);

// sum(a * b) in double over two f32 CPU tensors: the scalar probe loss for gradient checks.
double dot(Tensor a, Tensor b);

}  // namespace plm::testing

namespace plm {
// gtest prints a DType parameter by name ("bf16"), not as a raw byte; found by argument-dependent lookup.
inline void PrintTo(DType dtype, std::ostream* os) { *os << dtype_name(dtype); }
}  // namespace plm

// Skips a test that needs a GPU, saying why; with PLM_REQUIRE_CUDA=1 in the environment (scripts/gpu-check.sh)
// it fails instead, so a broken driver cannot pass as "skipped".
#define PLM_SKIP_WITHOUT_CUDA()                                                                \
  do {                                                                                         \
    if (::plm::cuda_device_count() == 0) {                                                     \
      const char* require = std::getenv("PLM_REQUIRE_CUDA");                                   \
      if (require != nullptr && std::string(require) == "1") {                                 \
        FAIL() << "PLM_REQUIRE_CUDA=1 but no CUDA GPU: " << ::plm::cuda_unavailable_reason();  \
      }                                                                                        \
      GTEST_SKIP() << "needs a CUDA GPU: " << ::plm::cuda_unavailable_reason();                \
    }                                                                                          \
  } while (0)
