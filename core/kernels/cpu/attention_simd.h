// The vectorised inner loops of the blocked CPU attention (attention_blocked.cc): row max, exp-and-sum and
// dot products. One kernel source (attention_simd_kernels.inc) compiled for AVX2+FMA and AVX-512F in GCC
// target regions, picked at run time like gemm_bf16; the scalar copy uses std::exp. The vector exp is a
// polynomial accurate to a few 1e-7 relative (measured in tests/core/kernels/attention_blocked_test.cc).
#pragma once

#include <cstdint>

#include "core/kernels/cpu/gemm_bf16.h"

namespace plm::cpu {

struct AttentionSimd {
  // max of x[0, n); -inf when n == 0.
  float (*row_max)(const float* x, int64_t n);
  // x[j] = exp(x[j] - shift) for j in [0, n), returning their sum. exp(-inf) is 0; inputs below ~-87.3
  // (results under FLT_MIN) give 0, above ~88.38 give +inf, NaN stays NaN.
  float (*exp_sum)(float* x, int64_t n, float shift);
  float (*dot)(const float* a, const float* b, int64_t n);
  // The same with b bf16 (a bf16 KV cache), widened exactly.
  float (*dot_bf16)(const float* a, const bf16* b, int64_t n);
};

// The kernels for `isa`, which this CPU must run (best_simd_isa() of gemm_bf16.h or narrower).
const AttentionSimd& attention_simd(SimdIsa isa);

}  // namespace plm::cpu
