// Helpers for the CUDA-vs-CPU kernel tests: inputs are made once on the host in the dtype under test, then
// uploaded for the CUDA kernel and widened to f32 for the CPU oracle, so both backends see identical
// values. Comparisons record the measured max |error| as a gtest property (--gtest_output=xml).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/kernels/backends.h"
#include "core/tensor.h"
#include "tests/core/test_util.h"

namespace plm::testing {

inline constexpr DType kCudaTestDTypes[] = {DType::kF32, DType::kBF16};

struct Tolerance {
  float atol, rtol;
};

// f32: the backends differ only in summation order and a few ulp of libm; bf16: the CUDA output is
// rounded to bf16 (relative step 2^-8), sometimes at HF's intermediate rounding points too.
inline Tolerance tolerance(DType dtype) {
  return dtype == DType::kF32 ? Tolerance{1e-5f, 1e-5f} : Tolerance{1e-2f, 1e-2f};
}

// The same values on both sides: `host` f32 on the CPU (the oracle's input), `device` in the tested dtype.
struct HostDevice {
  OwnedTensor host;
  OwnedTensor device;
};

// A CPU f32 copy of a CPU tensor of any float dtype (widening is exact).
inline OwnedTensor widen_to_f32(Tensor t) {
  const std::vector<float> values = to_vector(t);
  return tensor_from(t.shape(), values);
}

inline OwnedTensor to_cuda(Tensor t) { return to_device(t, Device::cuda()); }

// A CUDA copy of the CPU f32 tensor `host` in `dtype` (values rounded to it on the host).
inline OwnedTensor to_cuda_as(Tensor host, DType dtype) {
  const std::vector<float> values = to_vector(host);
  OwnedTensor stored(host.shape(), dtype);
  for (size_t i = 0; i < values.size(); ++i) {
    switch (dtype) {
      case DType::kF32: stored.data_as<float>()[i] = values[i]; break;
      case DType::kBF16: stored.data_as<bf16>()[i] = bf16(values[i]); break;
      case DType::kF16: stored.data_as<f16>()[i] = f16(values[i]); break;
      case DType::kI32:
      case DType::kI64:
      case DType::kU8: ADD_FAILURE() << "to_cuda_as wants a float dtype"; return stored;
    }
  }
  return to_cuda(stored);
}

// Uniform in [lo, hi) rounded to `dtype`, on both sides.
inline HostDevice random_pair(Shape shape, uint64_t seed, DType dtype, float lo = -1.0f, float hi = 1.0f) {
  OwnedTensor stored = random_tensor(shape, seed, lo, hi, dtype);
  return {widen_to_f32(stored), to_cuda(stored)};
}

// A CUDA output filled with NaN, so an element the kernel forgets to write fails the comparison.
inline OwnedTensor cuda_output(Shape shape, DType dtype) {
  OwnedTensor t(shape, dtype, Device::cuda());
  cuda::fill(t, std::numeric_limits<float>::quiet_NaN());
  return t;
}

// A CPU f32 output for the oracle.
inline OwnedTensor cpu_output(Shape shape) { return OwnedTensor(shape, DType::kF32); }

// cuda_out (any device, any float dtype) against the CPU oracle's cpu_out.
inline ::testing::AssertionResult matches_cpu(Tensor cuda_out, Tensor cpu_out, Tolerance tol,
                                              const std::string& label) {
  ::testing::Test::RecordProperty(label, std::to_string(max_abs_diff(cuda_out, cpu_out)));
  return all_close(cuda_out, cpu_out, tol.atol, tol.rtol);
}

inline ::testing::AssertionResult matches_cpu(Tensor cuda_out, Tensor cpu_out, DType dtype,
                                              const std::string& label) {
  return matches_cpu(cuda_out, cpu_out, tolerance(dtype), label);
}

inline std::string dtype_label(const std::string& what, DType dtype) {
  return what + "_" + std::string(dtype_name(dtype));
}

// "<what>_<rows>x<dim>_<dtype>", for SCOPED_TRACE over (rows, dim) shapes.
inline std::string shape_label(const char* what, DType dtype, int64_t rows, int64_t dim) {
  return dtype_label(std::string(what) + "_" + std::to_string(rows) + "x" + std::to_string(dim), dtype);
}

// Element values equal bit for bit (as floats; NaN never occurs in these tests).
inline bool same_values(Tensor a, Tensor b) { return to_vector(a) == to_vector(b); }

}  // namespace plm::testing
