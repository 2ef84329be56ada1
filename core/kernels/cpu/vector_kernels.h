// The vectorised inner loops of the CPU kernels: attention (attention_blocked.cc, attention_backward.cc: row
// max, exp-and-sum, dot products, the softmax gradient), softmax and cross-entropy rows, LayerNorm and RMSNorm
// rows, and the exact GELU and SwiGLU forward and backward (activations.cc). One kernel source
// (vector_kernels.inc) compiled for AVX2+FMA and AVX-512F in GCC target regions, picked at run time like
// gemm_bf16; the scalar copy uses std::exp / std::erf (and sums the training kernels' rows in double). The vector
// exp is a polynomial accurate to a few 1e-7 relative (measured in tests/core/kernels/attention_blocked_test.cc),
// the vector erf Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7, what PyTorch's vectorised GELU uses). Vector sums
// run in f32 across the lanes (error ~ eps sqrt(n / width)).
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
  // The same into bf16: p[j] = bf16(exp(x[j] - shift)) (nearest even), returning the sum of the f32 exps; x
  // unchanged. The bf16 attention's probabilities in one pass.
  float (*exp_sum_bf16)(const float* x, int64_t n, float shift, bf16* p);
  // y[j] = bf16(x[j]) (nearest even, NaN kept), bit-identical to bf16's constructor.
  void (*round_bf16)(const float* x, bf16* y, int64_t n);
  float (*dot)(const float* a, const float* b, int64_t n);
  // The same with b bf16 (a bf16 KV cache), widened exactly.
  float (*dot_bf16)(const float* a, const bf16* b, int64_t n);
  // y[j] = 0.5 x[j] (1 + erf(x[j] / sqrt(2))); y may alias x.
  void (*gelu)(const float* x, float* y, int64_t n);
  // out[j] = silu(gate[j]) up[j]; out may alias either input.
  void (*swiglu)(const float* gate, const float* up, float* out, int64_t n);

  // sum of exp(x[j] - shift) over [0, n), x unchanged (exp as exp_sum's).
  float (*sum_exp)(const float* x, int64_t n, float shift);
  // y[j] = scale exp(x[j] - shift); y may alias x.
  void (*scaled_exp)(const float* x, float* y, int64_t n, float shift, float scale);
  // ds[j] = p[j] (dp[j] - delta): the softmax backward with delta = sum p dp; ds may alias p or dp.
  void (*softmax_grad)(const float* p, const float* dp, float delta, float* ds, int64_t n);
  // sum of x[0, n); sum of (x[j] - center)^2.
  float (*sum)(const float* x, int64_t n);
  float (*sum_squares)(const float* x, int64_t n, float center);
  // The norm rows, with x_hat = (x - mean) rstd (RMSNorm: mean 0) and g = w dy:
  // y = x_hat w + b (b may be null: no bias); y may alias x.
  void (*norm_affine)(const float* x, const float* w, const float* b, float* y, int64_t n, float mean, float rstd);
  // *sum_g = sum g, *sum_g_x_hat = sum g x_hat.
  void (*norm_grad_sums)(const float* x, const float* w, const float* dy, int64_t n, float mean, float rstd,
                         float* sum_g, float* sum_g_x_hat);
  // dx = rstd (g - mean_g - x_hat mean_g_x_hat); dx may alias dy or x.
  void (*norm_backward)(const float* x, const float* w, const float* dy, float* dx, int64_t n, float mean, float rstd,
                        float mean_g, float mean_g_x_hat);
  // dx[j] = dy[j] gelu'(x[j]) (the exact GELU's); dx may alias either input.
  void (*gelu_backward)(const float* x, const float* dy, float* dx, int64_t n);
  // dgate = dout up silu'(gate), dup = dout silu(gate); the outputs may alias the inputs.
  void (*swiglu_backward)(const float* gate, const float* up, const float* dout, float* dgate, float* dup, int64_t n);
};

// The kernels for `isa`, which this CPU must run (best_simd_isa() of gemm_bf16.h or narrower).
const VectorKernels& vector_kernels(SimdIsa isa);

}  // namespace plm::cpu
