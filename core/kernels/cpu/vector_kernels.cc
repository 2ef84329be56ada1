// The kernels of core/kernels/cpu/vector_kernels.h: scalar loops with std::exp, and one source
// (vector_kernels.inc) compiled for AVX2+FMA and AVX-512F in target regions, so a build without
// -march=native still runs the widest ISA the CPU has.
#include "core/kernels/cpu/vector_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "core/check.h"
#include "core/kernels/cpu/horizontal.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace plm::cpu {

namespace {

// The vector exp's domain: below, exp(x) < FLT_MIN and the kernels return 0; above, 2^n of the range
// reduction would overflow (n = 128) and they return +inf.
constexpr float kExpMinInput = -87.3365448f;  // ln(FLT_MIN)
constexpr float kExpMaxInput = 88.37f;
constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;  // the normal pdf at 0

namespace scalar {

float row_max(const float* x, int64_t n) {
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < n; ++j) m = std::max(m, x[j]);
  return m;
}

float exp_sum(float* x, int64_t n, float shift) {
  float sum = 0.0f;
  for (int64_t j = 0; j < n; ++j) {
    x[j] = std::exp(x[j] - shift);
    sum += x[j];
  }
  return sum;
}

float exp_sum_bf16(const float* x, int64_t n, float shift, bf16* p) {
  float sum = 0.0f;
  for (int64_t j = 0; j < n; ++j) {
    const float e = std::exp(x[j] - shift);
    p[j] = bf16(e);
    sum += e;
  }
  return sum;
}

void round_bf16(const float* x, bf16* y, int64_t n) {
  for (int64_t j = 0; j < n; ++j) y[j] = bf16(x[j]);
}

float dot(const float* a, const float* b, int64_t n) {
  float s = 0.0f;
  for (int64_t d = 0; d < n; ++d) s += a[d] * b[d];
  return s;
}

float dot_bf16(const float* a, const bf16* b, int64_t n) {
  float s = 0.0f;
  for (int64_t d = 0; d < n; ++d) s += a[d] * static_cast<float>(b[d]);
  return s;
}

void gelu(const float* x, float* y, int64_t n) {
  for (int64_t j = 0; j < n; ++j) y[j] = 0.5f * x[j] * (1.0f + std::erf(x[j] * kInvSqrt2));
}

void swiglu(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t j = 0; j < n; ++j) out[j] = gate[j] / (1.0f + std::exp(-gate[j])) * up[j];
}

float sum_exp(const float* x, int64_t n, float shift) {
  double s = 0.0;
  for (int64_t j = 0; j < n; ++j) s += std::exp(x[j] - shift);
  return static_cast<float>(s);
}

void scaled_exp(const float* x, float* y, int64_t n, float shift, float scale) {
  for (int64_t j = 0; j < n; ++j) y[j] = scale * std::exp(x[j] - shift);
}

void softmax_grad(const float* p, const float* dp, float delta, float* ds, int64_t n) {
  for (int64_t j = 0; j < n; ++j) ds[j] = p[j] * (dp[j] - delta);
}

float sum(const float* x, int64_t n) {
  double s = 0.0;
  for (int64_t j = 0; j < n; ++j) s += x[j];
  return static_cast<float>(s);
}

float sum_squares(const float* x, int64_t n, float center) {
  double s = 0.0;
  for (int64_t j = 0; j < n; ++j) s += (x[j] - center) * (x[j] - center);
  return static_cast<float>(s);
}

void norm_affine(const float* x, const float* w, const float* b, float* y, int64_t n, float mean, float rstd) {
  for (int64_t j = 0; j < n; ++j) y[j] = (x[j] - mean) * rstd * w[j] + (b ? b[j] : 0.0f);
}

void norm_grad_sums(const float* x, const float* w, const float* dy, int64_t n, float mean, float rstd, float* sum_g,
                    float* sum_g_x_hat) {
  double g_total = 0.0, g_x_hat_total = 0.0;
  for (int64_t j = 0; j < n; ++j) {
    g_total += w[j] * dy[j];
    g_x_hat_total += w[j] * dy[j] * (x[j] - mean) * rstd;
  }
  *sum_g = static_cast<float>(g_total);
  *sum_g_x_hat = static_cast<float>(g_x_hat_total);
}

void norm_backward(const float* x, const float* w, const float* dy, float* dx, int64_t n, float mean, float rstd,
                   float mean_g, float mean_g_x_hat) {
  for (int64_t j = 0; j < n; ++j) dx[j] = rstd * (w[j] * dy[j] - mean_g - (x[j] - mean) * rstd * mean_g_x_hat);
}

void gelu_backward(const float* x, const float* dy, float* dx, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    const float cdf = 0.5f * (1.0f + std::erf(x[j] * kInvSqrt2));
    dx[j] = dy[j] * (cdf + x[j] * kInvSqrt2Pi * std::exp(-0.5f * x[j] * x[j]));
  }
}

void swiglu_backward(const float* gate, const float* up, const float* dout, float* dgate, float* dup, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    const float g = gate[j], u = up[j], d = dout[j];
    const float s = 1.0f / (1.0f + std::exp(-g));
    dgate[j] = d * u * s * (1.0f + g * (1.0f - s));  // silu'(g) = s (1 + g (1 - s))
    dup[j] = d * g * s;
  }
}

}  // namespace scalar

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
struct Simd {
  using V = __m256;
  static constexpr int kWidth = 8;
  static V set1(float x) { return _mm256_set1_ps(x); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  // bf16 is the top half of an f32: zero-extend to 32 bits and shift up (exact).
  static V widen(const bf16* p) {
    const __m128i bits = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(bits), 16));
  }
  // Lanes [0, count) valid, count in [1, kWidth).
  static __m256i tail_mask(int64_t count) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static V load_tail(const float* p, int64_t count, float fill) {
    const __m256i mask = tail_mask(count);
    return _mm256_blendv_ps(set1(fill), _mm256_maskload_ps(p, mask), _mm256_castsi256_ps(mask));
  }
  static void store_tail(float* p, V v, int64_t count) { _mm256_maskstore_ps(p, tail_mask(count), v); }
  // Lanes [0, count) rounded to bf16 as bf16's constructor rounds (integer arithmetic: nearest even, NaN quieted).
  static void store_bf16(bf16* p, V v, int64_t count) {
    const __m256i u = _mm256_castps_si256(v);
    const __m256i bias = _mm256_add_epi32(_mm256_set1_epi32(0x7fff), _mm256_and_si256(_mm256_srli_epi32(u, 16),
                                                                                      _mm256_set1_epi32(1)));
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)),
                                           _mm256_set1_epi32(0x7f800000));
    const __m256i rounded = _mm256_blendv_epi8(_mm256_srli_epi32(_mm256_add_epi32(u, bias), 16),
                                               _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40)), nan);
    const __m128i halves = _mm_packus_epi32(_mm256_castsi256_si128(rounded), _mm256_extracti128_si256(rounded, 1));
    if (count == kWidth) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(p), halves);
      return;
    }
    alignas(16) bf16 lanes[kWidth];
    _mm_store_si128(reinterpret_cast<__m128i*>(lanes), halves);
    std::copy_n(lanes, count, p);
  }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V div(V a, V b) { return _mm256_div_ps(a, b); }
  static V abs(V x) { return _mm256_andnot_ps(set1(-0.0f), x); }
  static V copy_sign(V magnitude, V sign) {  // magnitude >= 0
    return _mm256_or_ps(magnitude, _mm256_and_ps(set1(-0.0f), sign));
  }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V fnma(V a, V b, V c) { return _mm256_fnmadd_ps(a, b, c); }  // c - a b
  static V max(V a, V b) { return _mm256_max_ps(a, b); }
  static V min(V a, V b) { return _mm256_min_ps(a, b); }
  static V round(V x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // y 2^n for integral n in [-126, 127]: n goes straight into the exponent bits.
  static V scale_pow2(V y, V n) {
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(bits));
  }
  // y, with 0 where x < lo and +inf where x > hi.
  static V outside_range(V x, float lo, float hi, V y) {
    y = _mm256_blendv_ps(y, _mm256_setzero_ps(), _mm256_cmp_ps(x, set1(lo), _CMP_LT_OQ));
    return _mm256_blendv_ps(y, set1(std::numeric_limits<float>::infinity()), _mm256_cmp_ps(x, set1(hi), _CMP_GT_OQ));
  }
  static float reduce_add(V v) { return horizontal_sum(v); }
  static float reduce_max(V v) { return horizontal_max(v); }
};
#include "core/kernels/cpu/vector_kernels.inc"
}  // namespace avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f")
// GCC 12's AVX-512 intrinsics fill unused lanes from a self-initialised variable, which -Wuninitialized
// flags once inlined (GCC bug 105593, fixed in 13).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace avx512 {
struct Simd {
  using V = __m512;
  static constexpr int kWidth = 16;
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V widen(const bf16* p) {
    const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
  }
  static __mmask16 tail_mask(int64_t count) { return static_cast<__mmask16>((1u << count) - 1); }
  static V load_tail(const float* p, int64_t count, float fill) {
    return _mm512_mask_loadu_ps(set1(fill), tail_mask(count), p);
  }
  static void store_tail(float* p, V v, int64_t count) { _mm512_mask_storeu_ps(p, tail_mask(count), v); }
  // Lanes [0, count) rounded to bf16 as bf16's constructor rounds (integer arithmetic: nearest even, NaN quieted).
  static void store_bf16(bf16* p, V v, int64_t count) {
    const __m512i u = _mm512_castps_si512(v);
    const __m512i bias = _mm512_add_epi32(_mm512_set1_epi32(0x7fff), _mm512_and_si512(_mm512_srli_epi32(u, 16),
                                                                                      _mm512_set1_epi32(1)));
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                                  _mm512_set1_epi32(0x7f800000));
    const __m512i rounded = _mm512_mask_or_epi32(_mm512_srli_epi32(_mm512_add_epi32(u, bias), 16), nan,
                                                 _mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
    _mm512_mask_cvtepi32_storeu_epi16(p, tail_mask(count), rounded);
  }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V div(V a, V b) { return _mm512_div_ps(a, b); }
  static V abs(V x) { return _mm512_abs_ps(x); }
  static V copy_sign(V magnitude, V sign) {  // magnitude >= 0; integer ops: AVX-512F has no float and/or
    const __m512i sign_bits = _mm512_and_si512(_mm512_castps_si512(sign), _mm512_set1_epi32(INT32_MIN));
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(magnitude), sign_bits));
  }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V fnma(V a, V b, V c) { return _mm512_fnmadd_ps(a, b, c); }  // c - a b
  static V max(V a, V b) { return _mm512_max_ps(a, b); }
  static V min(V a, V b) { return _mm512_min_ps(a, b); }
  static V round(V x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static V scale_pow2(V y, V n) { return _mm512_scalef_ps(y, n); }
  // y, with 0 where x < lo and +inf where x > hi.
  static V outside_range(V x, float lo, float hi, V y) {
    y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, set1(lo), _CMP_LT_OQ), y, _mm512_setzero_ps());
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, set1(hi), _CMP_GT_OQ), y,
                                set1(std::numeric_limits<float>::infinity()));
  }
  static float reduce_add(V v) { return _mm512_reduce_add_ps(v); }
  static float reduce_max(V v) { return _mm512_reduce_max_ps(v); }
};
#include "core/kernels/cpu/vector_kernels.inc"
}  // namespace avx512
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

}  // namespace

const VectorKernels& vector_kernels(SimdIsa isa) {
  PLM_CHECK(static_cast<int>(isa) <= static_cast<int>(best_simd_isa()))
      << "attention_simd: this CPU cannot run " << simd_isa_name(isa) << " (best: "
      << simd_isa_name(best_simd_isa()) << ")";
// Every member of VectorKernels from the functions of one namespace (scalar, avx2, avx512).
#define PLM_VECTOR_KERNELS(ns)                                                                                   \
  VectorKernels {                                                                                                \
    .row_max = ns::row_max, .exp_sum = ns::exp_sum, .exp_sum_bf16 = ns::exp_sum_bf16,                            \
    .round_bf16 = ns::round_bf16, .dot = ns::dot, .dot_bf16 = ns::dot_bf16, .gelu = ns::gelu,  \
    .swiglu = ns::swiglu, .sum_exp = ns::sum_exp, .scaled_exp = ns::scaled_exp, .softmax_grad = ns::softmax_grad, \
    .sum = ns::sum, .sum_squares = ns::sum_squares, .norm_affine = ns::norm_affine,                              \
    .norm_grad_sums = ns::norm_grad_sums, .norm_backward = ns::norm_backward, .gelu_backward = ns::gelu_backward, \
    .swiglu_backward = ns::swiglu_backward                                                                       \
  }
  static const VectorKernels scalar_kernels = PLM_VECTOR_KERNELS(scalar);
#if defined(__x86_64__)
  static const VectorKernels avx2_kernels = PLM_VECTOR_KERNELS(avx2);
  static const VectorKernels avx512_kernels = PLM_VECTOR_KERNELS(avx512);
#endif
#undef PLM_VECTOR_KERNELS
  switch (isa) {
#if defined(__x86_64__)
    case SimdIsa::kAvx512: return avx512_kernels;
    case SimdIsa::kAvx2: return avx2_kernels;
#else
    case SimdIsa::kAvx512:
    case SimdIsa::kAvx2:  // unreachable: best_simd_isa() is scalar off x86-64
#endif
    case SimdIsa::kScalar: break;
  }
  return scalar_kernels;
}

}  // namespace plm::cpu
