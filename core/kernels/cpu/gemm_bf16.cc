// The bf16-weight GEMMs of core/kernels/cpu/gemm_bf16.h: one kernel source (gemm_bf16_tiles.inc) compiled
// for scalar, AVX2, AVX-512 (widening f32 activations) and AVX512-BF16 (bf16 activations, vdpbf16ps) in target
// regions, picked at run time, so a build without -march=native still runs the widest ISA the CPU has.
#include "core/kernels/cpu/gemm_bf16.h"

#include <algorithm>
#include <array>
#include <utility>
#include <vector>

#include "core/check.h"
#include "core/kernels/cpu/gemm_bf16_packed.h"
#include "core/kernels/cpu/horizontal.h"
#include "core/kernels/cpu/parallel.h"
#include "core/kernels/cpu/sgemm.h"
#include "core/kernels/cpu/vector_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace plm::cpu {

namespace {

// Activation bytes per pass over the weights in the tile path: 64 rows of K = 2048 f32 (128 of bf16), which stay
// in L2 while the weights stream. Each pass reads every weight again, so bf16 activations take twice the rows.
constexpr int64_t kActivationBlockBytes = int64_t{512} << 10;
// From this many activation rows on (with OpenBLAS), widened blocks + sgemm beat the tiles. Measured on
// 8192 x 2048 weights, 2 threads, AVX-512: tiles 162 vs 134 GFLOP/s at M = 64, 161 vs 169 at M = 96.
constexpr int64_t kBlasMinRows = 96;
// From this many activation rows on, the packed outer product beats the dot-product tiles (bf16 compute mode;
// measured on 8192 x 2048 weights, one thread: tiles faster at M = 24 (6.0 vs 6.5 ms), packed at 32 (7.7 vs 8.6)).
constexpr int64_t kPackedMinRows = 28;
// f32 elements per widened block (8 MiB): 1024 weight rows of K = 2048. Smaller blocks make OpenBLAS repack
// the activations more often; larger ones leave the cache.
constexpr int64_t kWidenedBlockElements = int64_t{1} << 21;

// The bf16 compute mode's GEMM after rounding: Bf16WeightGemm with bf16 activations.
struct Bf16Gemm {
  const bf16* a;  // (M, K)
  const bf16* w;  // (N, K)
  float* c;       // (M, N)
  int64_t m, n, k;
  float alpha, beta;
};

// c[i, j] = alpha * dot + beta * c[i, j], never reading c when beta == 0.
template <typename G>
inline void write_c(const G& g, int64_t i, int64_t j, float dot) {
  float& out = g.c[i * g.n + j];
  out = g.beta == 0.0f ? g.alpha * dot : g.alpha * dot + g.beta * out;
}

namespace scalar {
struct Simd {
  using V = float;
  using A = V;  // an activation vector
  using W = V;  // a weight vector
  static constexpr int kWidth = 1;
  static constexpr int kWeightRows = 8, kMaxActivationRows = 4, kAccumulators = 16;
  static V zero() { return 0.0f; }
  static A load_a(const float* p) { return *p; }
  static void store(float* p, V v) { *p = v; }
  static W load_w(const bf16* p) { return static_cast<float>(*p); }
  static V fma(V a, V b, V acc) { return acc + a * b; }
  static float sum(V v) { return v; }
};
#include "core/kernels/cpu/gemm_bf16_tiles.inc"
}  // namespace scalar

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
struct Simd {
  using V = __m256;
  using A = V;
  using W = V;
  static constexpr int kWidth = 8;
  // Of the 16 registers: up to 8 accumulators (8 x 1 or 4 x 2 tiles), the widened weight vectors of a tile and
  // one activation vector.
  static constexpr int kWeightRows = 8, kMaxActivationRows = 2, kAccumulators = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static A load_a(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  // bf16 is the top half of an f32: zero-extend to 32 bits and shift up (exact).
  static W load_w(const bf16* p) {
    const __m128i bits = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(bits), 16));
  }
  static V fma(V a, V b, V acc) { return _mm256_fmadd_ps(a, b, acc); }
  static float sum(V v) { return horizontal_sum(v); }
};
#include "core/kernels/cpu/gemm_bf16_tiles.inc"
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
  using A = V;
  using W = V;
  static constexpr int kWidth = 16;
  // Of the 32 registers: up to 16 accumulators (8 x 1, 8 x 2, 4 x 3 or 4 x 4 tiles), the widened weight
  // vectors of a tile and one activation vector.
  static constexpr int kWeightRows = 8, kMaxActivationRows = 4, kAccumulators = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static A load_a(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  // bf16 is the top half of an f32: zero-extend to 32 bits and shift up (exact).
  static W load_w(const bf16* p) {
    const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
  }
  static V fma(V a, V b, V acc) { return _mm512_fmadd_ps(a, b, acc); }
  static float sum(V v) { return _mm512_reduce_add_ps(v); }
};
#include "core/kernels/cpu/gemm_bf16_tiles.inc"

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
  using V = __m512;    // 16 f32 accumulators
  using A = __m512bh;  // 32 bf16: 16 pairs
  using W = __m512bh;
  static constexpr int kWidth = 32;
  // Of the 32 registers: up to 16 accumulators, the weight vectors of a tile and one activation vector.
  static constexpr int kWeightRows = 8, kMaxActivationRows = 4, kAccumulators = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static A load_a(const bf16* p) { return reinterpret_cast<A>(_mm512_loadu_si512(p)); }
  static W load_w(const bf16* p) { return reinterpret_cast<W>(_mm512_loadu_si512(p)); }
  // acc[l] += a[2l] w[2l] + a[2l+1] w[2l+1]: exact products, f32 sums.
  static V fma(A a, W w, V acc) { return _mm512_dpbf16_ps(acc, a, w); }
  static float sum(V v) { return _mm512_reduce_add_ps(v); }
};
#include "core/kernels/cpu/gemm_bf16_tiles.inc"
}  // namespace avx512_bf16
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

struct IsaKernels {
  void (*tiles)(const Bf16WeightGemm& g);
  void (*widen)(const bf16* src, float* dst, int64_t count);
};

IsaKernels kernels_for(SimdIsa isa) {
  PLM_CHECK(static_cast<int>(isa) <= static_cast<int>(best_simd_isa()))
      << "gemm_bf16: this CPU cannot run " << simd_isa_name(isa) << " (best: " << simd_isa_name(best_simd_isa())
      << ")";
  switch (isa) {
#if defined(__x86_64__)
    case SimdIsa::kAvx512: return {avx512::tiles, avx512::widen};
    case SimdIsa::kAvx2: return {avx2::tiles, avx2::widen};
#else
    case SimdIsa::kAvx512:
    case SimdIsa::kAvx2:  // unreachable: best_simd_isa() is scalar off x86-64
#endif
    case SimdIsa::kScalar: break;
  }
  return {scalar::tiles, scalar::widen};
}

// Rows of a rounded per task in round_to_bf16's threads.
constexpr int64_t kRoundChunk = int64_t{1} << 16;

}  // namespace

SimdIsa best_simd_isa() {
#if defined(__x86_64__)
  static const SimdIsa best = __builtin_cpu_supports("avx512f")                                  ? SimdIsa::kAvx512
                              : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? SimdIsa::kAvx2
                                                                                                 : SimdIsa::kScalar;
  return best;
#else
  return SimdIsa::kScalar;
#endif
}

bool cpu_has_avx512_bf16() {
#if defined(__x86_64__)
  static const bool has = __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl");
  return has;
#else
  return false;
#endif
}

const char* simd_isa_name(SimdIsa isa) {
  switch (isa) {
    case SimdIsa::kAvx512: return "AVX-512";
    case SimdIsa::kAvx2: return "AVX2";
    case SimdIsa::kScalar: return "scalar";
  }
  return "?";
}

void gemm_bf16_tiles(const Bf16WeightGemm& g, SimdIsa isa) { kernels_for(isa).tiles(g); }

void gemm_bf16_widened_blocks(const Bf16WeightGemm& g, SimdIsa isa) {
  const auto widen = kernels_for(isa).widen;
  const int64_t block_rows = std::max<int64_t>(1, kWidenedBlockElements / std::max<int64_t>(g.k, 1));
  // Reused across calls: a fresh 8 MiB buffer would page-fault on every call.
  thread_local std::vector<float> scratch;
  scratch.resize(static_cast<size_t>(std::min(block_rows, g.n) * g.k));
  for (int64_t n0 = 0; n0 < g.n; n0 += block_rows) {
    const int64_t rows = std::min(block_rows, g.n - n0);
    // This thread widens alone: an OpenMP team spinning after a parallel region takes the cores from
    // OpenBLAS's own threads (measured with 8 blocks per call: 1.3x to 1.9x slower).
    widen(g.w + n0 * g.k, scratch.data(), rows * g.k);
    sgemm({.a = g.a, .b = scratch.data(), .c = g.c + n0, .m = g.m, .n = rows, .k = g.k, .trans_a = false,
           .trans_b = true, .alpha = g.alpha, .beta = g.beta, .ldc = g.n});
  }
}

void gemm_bf16_weights(const Bf16WeightGemm& g) {
  if (sgemm_uses_blas() && g.m >= kBlasMinRows) {
    gemm_bf16_widened_blocks(g, best_simd_isa());
  } else {
    gemm_bf16_tiles(g, best_simd_isa());
  }
}

void round_to_bf16(const float* src, bf16* dst, int64_t count) {
  const auto round = vector_kernels(best_simd_isa()).round_bf16;
#pragma omp parallel for if (count >= 4 * kMinParallelWork)
  for (int64_t begin = 0; begin < count; begin += kRoundChunk) {
    round(src + begin, dst + begin, std::min(kRoundChunk, count - begin));
  }
}

void round_to_bf16_serial(const float* src, bf16* dst, int64_t count) {
  static const auto round = vector_kernels(best_simd_isa()).round_bf16;  // called per attention row
  round(src, dst, count);
}

void gemm_bf16_inputs(const Bf16WeightGemm& g, Bf16InputKernel kernel) {
  if (kernel == Bf16InputKernel::kPackedBf16) return gemm_bf16_packed(g);  // rounds while packing
  // Reused across calls (fresh buffers would page-fault on every call).
  thread_local std::vector<bf16> a_bf16;
  a_bf16.resize(static_cast<size_t>(g.m * g.k));
  round_to_bf16(g.a, a_bf16.data(), g.m * g.k);
  switch (kernel) {
    case Bf16InputKernel::kDotBf16:
      PLM_CHECK(cpu_has_avx512_bf16()) << "gemm_bf16_inputs: this CPU has no AVX512-BF16";
#if defined(__x86_64__)
      avx512_bf16::tiles(Bf16Gemm{.a = a_bf16.data(), .w = g.w, .c = g.c, .m = g.m, .n = g.n, .k = g.k,
                                  .alpha = g.alpha, .beta = g.beta});
#endif
      return;
    case Bf16InputKernel::kPackedBf16: break;  // above
    case Bf16InputKernel::kWidened: {
      thread_local std::vector<float> a_rounded;
      a_rounded.resize(a_bf16.size());
      kernels_for(best_simd_isa()).widen(a_bf16.data(), a_rounded.data(), g.m * g.k);
      Bf16WeightGemm rounded = g;
      rounded.a = a_rounded.data();
      gemm_bf16_weights(rounded);
      return;
    }
  }
}

void gemm_bf16_inputs(const Bf16WeightGemm& g) {
  if (!cpu_has_avx512_bf16()) return gemm_bf16_inputs(g, Bf16InputKernel::kWidened);
  gemm_bf16_inputs(g, g.m >= kPackedMinRows ? Bf16InputKernel::kPackedBf16 : Bf16InputKernel::kDotBf16);
}

}  // namespace plm::cpu
