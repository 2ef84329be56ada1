// Horizontal reductions of an AVX2 register (AVX-512 has _mm512_reduce_*_ps), shared by the per-ISA Simd
// structs of vector_kernels.cc and gemm_bf16.cc. Compiled for AVX2 whatever the file's flags; callable from code
// compiled for AVX2 or more.
#pragma once

#include <immintrin.h>

namespace plm::cpu {

__attribute__((target("avx2"))) inline float horizontal_sum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

__attribute__((target("avx2"))) inline float horizontal_max(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
}

}  // namespace plm::cpu
