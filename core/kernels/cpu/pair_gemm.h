// The small GEMMs of the bf16 compute mode's attention (attention_bf16.cc): c (M, N) = alpha a b (+ c) with a (M, K)
// bf16 row-major and b (K, N) bf16 in the pair layout vdpbf16ps reads, f32 sums. Unlike gemm_bf16's tiles (dot
// products along K, one horizontal sum per output), each vector here holds 16 outputs of a row, so a K of 64 (a
// head dim) costs no reductions. Calls from different threads are independent (no state).
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/kernels/cpu/gemm_bf16.h"

namespace plm::cpu {

inline constexpr int64_t kPairLanes = 16;  // outputs per vector: N is a multiple of this

struct PairGemm {
  const bf16* a;  // (M, lda), its first K columns used
  // (K / 2, ldb) pair rows: element (k, n) of b at b[(k / 2) * ldb + 2 * n + k % 2], ldb >= 2 N.
  const bf16* b;
  float* c;  // (M, ldc), its first N columns written
  int64_t m, n, k;  // n a multiple of kPairLanes, k even
  int64_t lda, ldb, ldc;
  float alpha;
  bool accumulate;  // c += alpha a b; else c = alpha a b, c never read
};

// kDotBf16 (vdpbf16ps) needs cpu_has_avx512_bf16(); kWidened widens both operands to f32 (exact products, f32
// sums, so the two differ in summation order only) with AVX-512F where the CPU has it, else in scalar code.
void pair_gemm(const PairGemm& g, Bf16InputKernel kernel);
// The kWidened kernel with an ISA of the caller's choice (one this CPU runs: AVX-512 or scalar; AVX2 runs the
// scalar code), so tests reach the scalar code on any CPU.
void pair_gemm_widened(const PairGemm& g, SimdIsa isa);

// Packs `count` rows of `width` elements (f32 rounded to nearest even, or bf16 copied; row r at src + r * stride)
// as the pair rows of b for pair_gemm, zero-filled to `padded_count` x `padded_width`:
// - pack_pairs_transposed: b = src^T, (width, count): pair row p holds elements 2p, 2p + 1 of every row, e.g.
//   keys for the scores q k^T (b: (padded_width / 2, 2 padded_count)).
// - pack_pairs: b = src, (count, width): pair row p interleaves rows 2p and 2p + 1, e.g. values for p v
//   (b: (padded_count / 2, 2 padded_width)).
// Rows are located by row_ptr(r) so paged caches pack the same way.
template <typename T, typename RowPtr>
void pack_pairs_transposed(const RowPtr& row_ptr, int64_t count, int64_t width, int64_t padded_count,
                           int64_t padded_width, bf16* b) {
  const int64_t ldb = 2 * padded_count;
  for (int64_t r = 0; r < padded_count; ++r) {
    const T* src = r < count ? row_ptr(r) : nullptr;
    for (int64_t e = 0; e < padded_width; ++e) {
      b[(e / 2) * ldb + 2 * r + e % 2] = src != nullptr && e < width ? bf16(src[e]) : bf16();
    }
  }
}

template <typename T, typename RowPtr>
void pack_pairs(const RowPtr& row_ptr, int64_t count, int64_t width, int64_t padded_count, int64_t padded_width,
                bf16* b) {
  const int64_t ldb = 2 * padded_width;
  for (int64_t r = 0; r < padded_count; ++r) {
    const T* src = r < count ? row_ptr(r) : nullptr;
    bf16* dst = b + (r / 2) * ldb + r % 2;
    for (int64_t e = 0; e < padded_width; ++e) dst[2 * e] = src != nullptr && e < width ? bf16(src[e]) : bf16();
  }
}

}  // namespace plm::cpu
