// pair_gemm of pair_gemm.h: one tile source (pair_gemm_tiles.inc) compiled for vdpbf16ps (AVX512-BF16), AVX-512F
// (both operands widened to f32, two FMAs per pair) and scalar code, in target regions like gemm_bf16.cc.
#include "core/kernels/cpu/pair_gemm.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "core/check.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace plm::cpu {

namespace {

uint32_t load_pair(const bf16* p) {
  uint32_t pair;
  std::memcpy(&pair, p, sizeof(pair));
  return pair;
}

namespace scalar {
struct Simd {
  using V = std::array<float, kPairLanes>;
  using A = std::array<float, 2>;
  using B = const bf16*;  // kPairLanes pairs
  static constexpr int kRows = 2, kVectors = 1;
  static V zero() { return {}; }
  static B load_b(const bf16* p) { return p; }
  static A broadcast_a(const bf16* p) { return {static_cast<float>(p[0]), static_cast<float>(p[1])}; }
  static V dot(const A& a, B b, V acc) {
    for (int64_t l = 0; l < kPairLanes; ++l) {
      acc[l] += a[0] * static_cast<float>(b[2 * l]) + a[1] * static_cast<float>(b[2 * l + 1]);
    }
    return acc;
  }
  static void store(float* c, const V& v, float alpha, bool accumulate) {
    for (int64_t l = 0; l < kPairLanes; ++l) c[l] = accumulate ? c[l] + alpha * v[l] : alpha * v[l];
  }
};
#include "core/kernels/cpu/pair_gemm_tiles.inc"
}  // namespace scalar

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx512f")
// GCC 12's AVX-512 intrinsics trip -Wuninitialized once inlined (GCC bug 105593; see gemm_bf16.cc).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace avx512 {
// A pair vector as its even (low half of each 32-bit lane) and odd (high half) elements, widened exactly.
struct Widened {
  __m512 even, odd;
};
inline Widened widen_pairs(__m512i bits) {
  return {_mm512_castsi512_ps(_mm512_slli_epi32(bits, 16)),
          _mm512_castsi512_ps(_mm512_and_si512(bits, _mm512_set1_epi32(static_cast<int>(0xffff0000u))))};
}
struct Simd {
  using V = __m512;
  using A = Widened;
  using B = Widened;
  // Of the 32 registers: 16 accumulators, 8 widened b vectors, 2 widened a pairs.
  static constexpr int kRows = 4, kVectors = 4;
  static V zero() { return _mm512_setzero_ps(); }
  static B load_b(const bf16* p) { return widen_pairs(_mm512_loadu_si512(p)); }
  static A broadcast_a(const bf16* p) { return widen_pairs(_mm512_set1_epi32(static_cast<int>(load_pair(p)))); }
  static V dot(const A& a, const B& b, V acc) {
    return _mm512_fmadd_ps(a.odd, b.odd, _mm512_fmadd_ps(a.even, b.even, acc));
  }
  static void store(float* c, V v, float alpha, bool accumulate) {
    const __m512 scaled = _mm512_mul_ps(_mm512_set1_ps(alpha), v);
    _mm512_storeu_ps(c, accumulate ? _mm512_add_ps(_mm512_loadu_ps(c), scaled) : scaled);
  }
};
#include "core/kernels/cpu/pair_gemm_tiles.inc"
}  // namespace avx512
#pragma GCC diagnostic pop
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512bf16")
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace avx512_bf16 {
struct Simd {
  using V = __m512;
  using A = __m512bh;
  using B = __m512bh;
  // Of the 32 registers: 24 accumulators, 4 b vectors, 1 broadcast pair.
  static constexpr int kRows = 6, kVectors = 4;
  static V zero() { return _mm512_setzero_ps(); }
  static B load_b(const bf16* p) { return reinterpret_cast<B>(_mm512_loadu_si512(p)); }
  static A broadcast_a(const bf16* p) { return reinterpret_cast<A>(_mm512_set1_epi32(static_cast<int>(load_pair(p)))); }
  // acc[l] += a[0] b[2l] + a[1] b[2l + 1]: exact products, f32 sums.
  static V dot(A a, B b, V acc) { return _mm512_dpbf16_ps(acc, a, b); }
  static void store(float* c, V v, float alpha, bool accumulate) {
    const __m512 scaled = _mm512_mul_ps(_mm512_set1_ps(alpha), v);
    _mm512_storeu_ps(c, accumulate ? _mm512_add_ps(_mm512_loadu_ps(c), scaled) : scaled);
  }
};
#include "core/kernels/cpu/pair_gemm_tiles.inc"
}  // namespace avx512_bf16
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

void check_shape(const PairGemm& g) {
  PLM_CHECK(g.n % kPairLanes == 0 && g.k % 2 == 0 && g.ldb >= 2 * g.n && g.lda >= g.k && g.ldc >= g.n)
      << "pair_gemm: n " << g.n << " (a multiple of " << kPairLanes << "), k " << g.k << " (even), lda " << g.lda
      << ", ldb " << g.ldb << ", ldc " << g.ldc;
}

}  // namespace

void pair_gemm_widened(const PairGemm& g, SimdIsa isa) {
  check_shape(g);
  PLM_CHECK(static_cast<int>(isa) <= static_cast<int>(best_simd_isa()))
      << "pair_gemm: this CPU cannot run " << simd_isa_name(isa) << " (best: " << simd_isa_name(best_simd_isa())
      << ")";
  if (g.m == 0 || g.n == 0) return;
#if defined(__x86_64__)
  if (isa == SimdIsa::kAvx512) {
    avx512::run(g);
    return;
  }
#endif
  scalar::run(g);
}

void pair_gemm(const PairGemm& g, Bf16InputKernel kernel) {
  switch (kernel) {
    case Bf16InputKernel::kDotBf16:
    case Bf16InputKernel::kPackedBf16:  // pair_gemm's operands are pair-packed already: one vdpbf16ps kernel
      check_shape(g);
      PLM_CHECK(cpu_has_avx512_bf16()) << "pair_gemm: this CPU has no AVX512-BF16";
      if (g.m == 0 || g.n == 0) return;
#if defined(__x86_64__)
      avx512_bf16::run(g);
#endif
      return;
    case Bf16InputKernel::kWidened:
      pair_gemm_widened(g, best_simd_isa());
      return;
  }
}

}  // namespace plm::cpu
