// The vectorised inner loops of the CPU attention (attention_blocked.cc: row max, exp-and-sum, dot products) and
// the forward activations (activations.cc: exact GELU, SwiGLU). One kernel source (vector_kernels.inc) compiled
// for AVX2+FMA and AVX-512F in GCC target regions, picked at run time like gemm_bf16; the scalar copy uses
// std::exp / std::erf. The vector exp is a polynomial accurate to a few 1e-7 relative (measured in
// tests/core/kernels/attention_blocked_test.cc), the vector erf Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7,
// what PyTorch's vectorised GELU uses).
#pragma once

#include <cstdint>

#include "core/kernels/cpu/gemm_bf16.h"

namespace plm::cpu {

struct VectorKernels {
  // max of x[0, n); -inf when n == 0.
  float (*row_max)(const float* x, int64_t n);
  // x[j] = exp(x[j] - shift) for j in [0, n), returning their sum. exp(-inf) is 0; inputs below ~-87.3
  // (results under FLT_MIN) give 0, above ~88.38 give +inf, NaN stays NaN.
  float (*exp_sum)(float* x, int64_t n, float shift);
  float (*dot)(const float* a, const float* b, int64_t n);
  // The same with b bf16 (a bf16 KV cache), widened exactly.
  float (*dot_bf16)(const float* a, const bf16* b, int64_t n);
  // y[j] = 0.5 x[j] (1 + erf(x[j] / sqrt(2))); y may alias x.
  void (*gelu)(const float* x, float* y, int64_t n);
  // out[j] = silu(gate[j]) up[j]; out may alias either input.
  void (*swiglu)(const float* gate, const float* up, float* out, int64_t n);
};

// The kernels for `isa`, which this CPU must run (best_simd_isa() of gemm_bf16.h or narrower).
const VectorKernels& vector_kernels(SimdIsa isa);

}  // namespace plm::cpu
