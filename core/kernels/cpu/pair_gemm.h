// The small GEMMs of the bf16 compute mode's attention (attention_bf16.cc): c (M, N) = alpha a b (+ c) with a (M, K)
// bf16 row-major and b (K, N) bf16 in the pair layout vdpbf16ps reads, f32 sums. Unlike gemm_bf16's tiles (dot
// products along K, one horizontal sum per output), each vector here holds 16 outputs of a row, so a K of 64 (a
// head dim) costs no reductions. Calls from different threads are independent (no state).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

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

// Packs `count` rows of `width` elements (f32 rounded to nearest even, or bf16 copied; row r at row_ptr(r))
// as the pair rows of b for pair_gemm, zero-filled to `padded_count` x `padded_width`:
// - pack_pairs_transposed: b = src^T, (width, count): pair row p holds elements 2p, 2p + 1 of every row, e.g.
//   keys for the scores q k^T (b: (padded_width / 2, 2 padded_count)).
// - pack_pairs: b = src, (count, width): pair row p interleaves rows 2p and 2p + 1, e.g. values for p v
//   (b: (padded_count / 2, 2 padded_width)).
// Rows are located by row_ptr(r) so paged caches pack the same way. Each row is rounded once, vectorised, into
// `padded_width` bf16 (rounded_row) before it is laid out.
// Rows of one head sit a token's width apart (4 KiB for 16 heads x 64), so every row is on a new page, where the
// hardware prefetchers stop: the row kPrefetchRows ahead is prefetched by hand (2-3x faster packing measured).
inline constexpr int64_t kPrefetchRows = 8;
template <typename T>
void prefetch_row(const T* row, int64_t width) {
  const char* bytes = reinterpret_cast<const char*>(row);
  for (int64_t offset = 0; offset < width * static_cast<int64_t>(sizeof(T)); offset += 64) {
    __builtin_prefetch(bytes + offset);
  }
}

inline void rounded_row(const float* src, int64_t width, int64_t padded_width, bf16* dst) {
  round_to_bf16_serial(src, dst, width);
  std::fill(dst + width, dst + padded_width, bf16());
}
inline void rounded_row(const bf16* src, int64_t width, int64_t padded_width, bf16* dst) {
  std::copy_n(src, width, dst);
  std::fill(dst + width, dst + padded_width, bf16());
}

template <typename T, typename RowPtr>
void pack_pairs_transposed(const RowPtr& row_ptr, int64_t count, int64_t width, int64_t padded_count,
                           int64_t padded_width, bf16* b) {
  const int64_t ldb = 2 * padded_count;
  thread_local std::vector<bf16> row;
  row.resize(static_cast<size_t>(padded_width));
  for (int64_t r = 0; r < padded_count; ++r) {
    if (r + kPrefetchRows < count) prefetch_row<T>(row_ptr(r + kPrefetchRows), width);
    if (r < count) {
      rounded_row(row_ptr(r), width, padded_width, row.data());
    } else {
      std::fill(row.begin(), row.end(), bf16());
    }
    // Pair p (elements 2p, 2p + 1, one 32-bit word) goes to column r of pair row p.
    for (int64_t p = 0; p < padded_width / 2; ++p) std::memcpy(b + p * ldb + 2 * r, row.data() + 2 * p, 2 * sizeof(bf16));
  }
}

template <typename T, typename RowPtr>
void pack_pairs(const RowPtr& row_ptr, int64_t count, int64_t width, int64_t padded_count, int64_t padded_width,
                bf16* b) {
  const int64_t ldb = 2 * padded_width;
  thread_local std::vector<bf16> even, odd;
  even.resize(static_cast<size_t>(padded_width));
  odd.resize(static_cast<size_t>(padded_width));
  const auto round_row = [&](int64_t r, std::vector<bf16>& dst) {
    if (r + kPrefetchRows < count) prefetch_row<T>(row_ptr(r + kPrefetchRows), width);
    if (r < count) {
      rounded_row(row_ptr(r), width, padded_width, dst.data());
    } else {
      std::fill(dst.begin(), dst.end(), bf16());
    }
  };
  for (int64_t p = 0; p < padded_count / 2; ++p) {
    round_row(2 * p, even);
    round_row(2 * p + 1, odd);
    bf16* dst = b + p * ldb;
    for (int64_t e = 0; e < padded_width; ++e) {
      dst[2 * e] = even[e];
      dst[2 * e + 1] = odd[e];
    }
  }
}

}  // namespace plm::cpu
