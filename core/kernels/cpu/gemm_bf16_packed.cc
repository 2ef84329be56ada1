// gemm_bf16_packed (core/kernels/cpu/gemm_bf16_packed.h): the bf16 compute mode's GEMM for many activation
// rows, as an outer product over packed operands (the BLIS structure), where the dot-product tiles of
// gemm_bf16_tiles.inc load a weight vector and an activation vector per 32 products and run out of cache
// bandwidth (~75 % of the vdpbf16ps peak).
//
// One vdpbf16ps multiplies a pair (k, k + 1) of one activation row, broadcast, by the same pair of 16 weight
// rows: c[i, j..j+15] += a[i, k] w[j.., k] + a[i, k+1] w[j.., k+1]. A register tile is kRows activation rows
// x 32 weight rows (two vectors): per K pair it loads two weight vectors and broadcasts kRows pairs for
// 2 kRows vdpbf16ps. For that both operands are packed as 32-bit pair words:
// - activations, rounded to bf16 (as gemm_bf16_inputs rounds them) in panels of kRows rows, pair-major:
//   word [panel][p][r] holds row panel * kRows + r, pair p; once per call, shared by the threads;
// - weights in panels of 32 rows, pair-major: word [p][j] holds weight row j, pair p; per thread, for its
//   column chunk and one K block at a time, so the chunk (kChunkColumns x kBlockPairs words) stays in L2 while
//   every activation panel passes, and the activation panel of one K block stays in L1 while the weight
//   panels pass.
// Zero words pad the panels past M, N and an odd K, so the tiles never branch on the edges.
// The same engine runs sgemm_bf16 (training's bf16 compute mode on f32 operands in any transposition): an
// operand whose K runs along its stored rows is packed by 16 x 16 word transposes; one whose K runs down its
// columns (a transposed a, a plain b) by interleaving two stored rows into pairs.
#include "core/kernels/cpu/gemm_bf16_packed.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "core/check.h"
#include "core/kernels/cpu/parallel.h"
#include "core/kernels/cpu/sgemm.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace plm::cpu {

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512bf16")
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace {

constexpr int kRows = 14;                // activation rows per register tile: 28 accumulators + 2 weight vectors
constexpr int kColumns = 32;             // weight rows (output columns) per register tile
constexpr int64_t kBlockPairs = 1024;    // K pairs per block (all of K = 2048): measured 2-4 % faster than 256 or 512
constexpr int64_t kChunkColumns = 256;   // output columns per thread task

struct Words16 {  // 16 vectors of 16 words (a plain array: std::array drops __m512i's alignment attribute)
  __m512i v[16];
  __m512i& operator[](size_t i) { return v[i]; }
};

// 16 x 16 32-bit words: r[j] becomes column j of the input rows.
inline void transpose_16x16(Words16& r) {
  Words16 t;
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    r[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    r[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    r[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    r[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_i32x4(r[i], r[4 + i], 0x88);
    t[4 + i] = _mm512_shuffle_i32x4(r[i], r[4 + i], 0xdd);
    t[8 + i] = _mm512_shuffle_i32x4(r[8 + i], r[12 + i], 0x88);
    t[12 + i] = _mm512_shuffle_i32x4(r[8 + i], r[12 + i], 0xdd);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm512_shuffle_i32x4(t[i], t[8 + i], 0x88);
    r[8 + i] = _mm512_shuffle_i32x4(t[i], t[8 + i], 0xdd);
    r[4 + i] = _mm512_shuffle_i32x4(t[4 + i], t[12 + i], 0x88);
    r[12 + i] = _mm512_shuffle_i32x4(t[4 + i], t[12 + i], 0xdd);
  }
}

// Pairs 16 words at a time from one source row: f32 activations (rounded to bf16 nearest even by
// vcvtne2ps2bf16, which reads subnormals as zero, as vdpbf16ps would) or bf16 weights. `count` values (not
// pairs) remain in the row; missing ones read as zero.
inline __m512i pair_words(const float* row, int64_t count) {
  if (count >= 32) {
    return reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(_mm512_loadu_ps(row + 16), _mm512_loadu_ps(row)));
  }
  const auto mask = [](int64_t n) { return static_cast<__mmask16>(n <= 0 ? 0 : n >= 16 ? 0xffff : (1u << n) - 1); };
  const __m512 lo = _mm512_maskz_loadu_ps(mask(count), row);
  const __m512 hi = _mm512_maskz_loadu_ps(mask(count - 16), row + 16);
  return reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo));
}
inline __m512i pair_words(const bf16* row, int64_t count) {
  if (count >= 32) return _mm512_loadu_si512(row);
  const __mmask32 mask = count <= 0 ? 0 : static_cast<__mmask32>((uint64_t{1} << count) - 1);
  return _mm512_maskz_loadu_epi16(mask, row);
}

// One operand of the GEMM as "lines" (rows of op(a), columns of op(b)) of K values, f32 or bf16 in memory.
struct Operand {
  const void* data;
  bool is_bf16;
  bool k_along_rows;  // element (line r, k) at data[r * ld + k]; else at data[k * ld + r]
  int64_t ld;
  int64_t lines;      // lines past this read as zero
  bool panels = false;  // bf16 weight panels (pack_weight_panels): the tiles read them in place
};

// Rounds 16 f32 to bf16 (vcvtneps2bf16: nearest even, subnormals read as zero as vdpbf16ps reads them) or
// loads 16 bf16, `count` of them present (the rest zero), each in the low half of a 32-bit lane.
inline __m512i widened_bf16(const float* src, int64_t count) {
  const __m512 x = count >= 16 ? _mm512_loadu_ps(src)
                               : _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << count) - 1), src);
  return _mm512_cvtepu16_epi32(reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(x)));
}
inline __m512i widened_bf16(const bf16* src, int64_t count) {
  const __m256i x = count >= 16 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src))
                                : _mm256_maskz_loadu_epi16(static_cast<__mmask16>((1u << count) - 1), src);
  return _mm512_cvtepu16_epi32(x);
}

// Writes pairs [p0, p0 + pairs) of lines [line0, line0 + width) as words out[p * out_stride + r], r < width <= 16.
template <typename T>
void pack_lines(const Operand& op, int64_t k, int64_t line0, int64_t p0, int64_t pairs, uint32_t* out,
                int64_t out_stride, int width) {
  const T* data = static_cast<const T*>(op.data);
  const int64_t lines = std::clamp<int64_t>(op.lines - line0, 0, 16);
  const __mmask16 store_mask = static_cast<__mmask16>((1u << width) - 1);
  if (op.k_along_rows) {  // 16 lines' pairs by a 16 x 16 word transpose
    Words16 r;
    for (int64_t p = 0; p < pairs; p += 16) {
      const int64_t first = 2 * (p0 + p);
      for (int i = 0; i < 16; ++i) {
        r[i] = i < lines ? pair_words(data + (line0 + i) * op.ld + first, k - first) : _mm512_setzero_si512();
      }
      transpose_16x16(r);
      const int64_t count = std::min<int64_t>(16, pairs - p);
      for (int64_t j = 0; j < count; ++j) {
        _mm512_mask_storeu_epi32(out + (p + j) * out_stride, store_mask, r[static_cast<size_t>(j)]);
      }
    }
    return;
  }
  for (int64_t p = 0; p < pairs; ++p) {  // stored rows 2p and 2p + 1 interleaved: 16 lines' pairs
    const int64_t row = 2 * (p0 + p);
    const __m512i even = widened_bf16(data + row * op.ld + line0, lines);
    const __m512i odd =
        row + 1 < k ? widened_bf16(data + (row + 1) * op.ld + line0, lines) : _mm512_setzero_si512();
    _mm512_mask_storeu_epi32(out + p * out_stride, store_mask, _mm512_or_si512(even, _mm512_slli_epi32(odd, 16)));
  }
}

void pack(const Operand& op, int64_t k, int64_t line0, int64_t p0, int64_t pairs, uint32_t* out, int64_t out_stride,
          int width) {
  op.is_bf16 ? pack_lines<bf16>(op, k, line0, p0, pairs, out, out_stride, width)
             : pack_lines<float>(op, k, line0, p0, pairs, out, out_stride, width);
}

// c[i, 0..31] (+)= alpha * sum over pairs of a[p][i] w[p][0..31], for the tile's R rows. `add` adds to c (a
// later K block); otherwise beta scales the c read (never read when beta == 0).
template <int R>
void tile(const uint32_t* a, const uint32_t* w, int64_t pairs, float* c, int64_t ldc, __mmask16 mask0,
          __mmask16 mask1, float alpha, float beta, bool add) {
  __m512 acc0[R], acc1[R];
  for (int i = 0; i < R; ++i) acc0[i] = acc1[i] = _mm512_setzero_ps();
  for (int64_t p = 0; p < pairs; ++p) {
    const __m512bh w0 = reinterpret_cast<__m512bh>(_mm512_loadu_si512(w + p * kColumns));
    const __m512bh w1 = reinterpret_cast<__m512bh>(_mm512_loadu_si512(w + p * kColumns + 16));
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      const __m512bh ai = reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(a[p * R + i])));
      acc0[i] = _mm512_dpbf16_ps(acc0[i], ai, w0);
      acc1[i] = _mm512_dpbf16_ps(acc1[i], ai, w1);
    }
  }
  const __m512 alpha_v = _mm512_set1_ps(alpha), beta_v = _mm512_set1_ps(add ? 1.0f : beta);
  const bool read_c = add || beta != 0.0f;
  for (int i = 0; i < R; ++i) {
    float* row = c + i * ldc;
    __m512 out0 = _mm512_mul_ps(alpha_v, acc0[i]), out1 = _mm512_mul_ps(alpha_v, acc1[i]);
    if (read_c) {
      out0 = _mm512_fmadd_ps(beta_v, _mm512_maskz_loadu_ps(mask0, row), out0);
      out1 = _mm512_fmadd_ps(beta_v, _mm512_maskz_loadu_ps(mask1, row + 16), out1);
    }
    _mm512_mask_storeu_ps(row, mask0, out0);
    _mm512_mask_storeu_ps(row + 16, mask1, out1);
  }
}

using TileFn = void (*)(const uint32_t*, const uint32_t*, int64_t, float*, int64_t, __mmask16, __mmask16, float,
                        float, bool);
template <int... R>
constexpr std::array<TileFn, sizeof...(R)> tile_table(std::integer_sequence<int, R...>) {
  return {&tile<R + 1>...};
}
constexpr auto kTiles = tile_table(std::make_integer_sequence<int, kRows>{});

__mmask16 column_mask(int64_t columns) {
  return columns >= 16 ? static_cast<__mmask16>(0xffff)
                       : static_cast<__mmask16>(columns <= 0 ? 0 : (1u << columns) - 1);
}


// c (M, N), row stride ldc, = alpha op(a) op(b) + beta c over packed pair words (the structure at the top).
struct PackedGemm {
  Operand a, b;
  float* c;
  int64_t m, n, k, ldc;
  float alpha, beta;
};

void run(const PackedGemm& g) {
  const int64_t pairs = (g.k + 1) / 2, panels = (g.m + kRows - 1) / kRows;
  // Reused across calls (fresh buffers would page-fault on every call). It only grows: shrinking and growing back
  // would zero-fill the regrown words on every call whose K exceeds the last one's.
  thread_local std::vector<uint32_t> a_packed;
  a_packed.resize(std::max(a_packed.size(), static_cast<size_t>(panels * kRows * pairs)));
  uint32_t* const a_panels = a_packed.data();  // the calling thread's buffer (thread_local in the workers is theirs)
#pragma omp parallel for if (g.m * g.k >= kMinParallelWork)
  for (int64_t panel = 0; panel < panels; ++panel) {
    const int rows = static_cast<int>(std::min<int64_t>(kRows, g.m - panel * kRows));
    pack(g.a, g.k, panel * kRows, 0, pairs, a_panels + panel * kRows * pairs, rows, rows);
  }
  const int64_t chunks = (g.n + kChunkColumns - 1) / kChunkColumns;
#pragma omp parallel for schedule(dynamic) if (g.m * g.n * g.k >= kMinParallelWork)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const int64_t n0 = chunk * kChunkColumns, columns = std::min(kChunkColumns, g.n - n0);
    thread_local std::vector<uint32_t> b_packed;
    if (!g.b.panels) b_packed.resize(static_cast<size_t>(kChunkColumns * kBlockPairs));
    for (int64_t p0 = 0; p0 < pairs; p0 += kBlockPairs) {
      const int64_t block = std::min(kBlockPairs, pairs - p0);
      // The K block of the weight panel holding column n0 + j0: packed here, or in place in weight panels.
      const auto weight_panel = [&](int64_t j0) {
        return g.b.panels ? static_cast<const uint32_t*>(g.b.data) + (n0 + j0) * pairs + p0 * kColumns
                          : b_packed.data() + (j0 / kColumns) * block * kColumns;
      };
      for (int64_t j0 = 0; j0 < columns && !g.b.panels; j0 += kColumns) {  // panels of kColumns lines, words [p][j]
        uint32_t* panel = b_packed.data() + (j0 / kColumns) * block * kColumns;
        pack(g.b, g.k, n0 + j0, p0, block, panel, kColumns, 16);
        pack(g.b, g.k, n0 + j0 + 16, p0, block, panel + 16, kColumns, 16);
      }
      for (int64_t panel = 0; panel < panels; ++panel) {
        const int64_t row0 = panel * kRows, rows = std::min<int64_t>(kRows, g.m - row0);
        const uint32_t* a = a_panels + panel * kRows * pairs + p0 * rows;
        for (int64_t j0 = 0; j0 < columns; j0 += kColumns) {
          kTiles[static_cast<size_t>(rows - 1)](a, weight_panel(j0), block, g.c + row0 * g.ldc + n0 + j0, g.ldc,
                                                column_mask(columns - j0), column_mask(columns - j0 - 16), g.alpha,
                                                g.beta, p0 > 0);
        }
      }
    }
  }
}

}  // namespace

void gemm_bf16_packed(const Bf16WeightGemm& g) {
  PLM_CHECK(cpu_has_avx512_bf16()) << "gemm_bf16_packed: this CPU has no AVX512-BF16";
  run({.a = {.data = g.a, .is_bf16 = false, .k_along_rows = true, .ld = g.k, .lines = g.m},
       .b = {.data = g.w, .is_bf16 = true, .k_along_rows = true, .ld = g.k, .lines = g.n},
       .c = g.c, .m = g.m, .n = g.n, .k = g.k, .ldc = g.n, .alpha = g.alpha, .beta = g.beta});
}

void gemm_bf16_prepacked(const Bf16WeightGemm& g) {
  PLM_CHECK(cpu_has_avx512_bf16()) << "gemm_bf16_prepacked: this CPU has no AVX512-BF16";
  PLM_CHECK(weight_panels_fit(g.n, g.k)) << "gemm_bf16_prepacked: weight panels need N a multiple of "
                                         << kWeightPanelRows << " and K even, got N " << g.n << ", K " << g.k;
  if (g.m == 0 || g.n == 0) return;
  run({.a = {.data = g.a, .is_bf16 = false, .k_along_rows = true, .ld = g.k, .lines = g.m},
       .b = {.data = g.w, .is_bf16 = true, .k_along_rows = true, .ld = g.k, .lines = g.n, .panels = true},
       .c = g.c, .m = g.m, .n = g.n, .k = g.k, .ldc = g.n, .alpha = g.alpha, .beta = g.beta});
}

void sgemm_bf16_packed(const Sgemm& g) {
  PLM_CHECK(cpu_has_avx512_bf16()) << "sgemm_bf16_packed: this CPU has no AVX512-BF16";
  run({.a = {.data = g.a, .is_bf16 = false, .k_along_rows = !g.trans_a, .ld = g.trans_a ? g.m : g.k, .lines = g.m},
       .b = {.data = g.b, .is_bf16 = false, .k_along_rows = g.trans_b, .ld = g.trans_b ? g.k : g.n, .lines = g.n},
       .c = g.c, .m = g.m, .n = g.n, .k = g.k, .ldc = g.ldc, .alpha = g.alpha, .beta = g.beta});
}
#pragma GCC diagnostic pop
#pragma GCC pop_options
#else
void gemm_bf16_packed(const Bf16WeightGemm&) { PLM_CHECK(false) << "gemm_bf16_packed: this CPU has no AVX512-BF16"; }
void gemm_bf16_prepacked(const Bf16WeightGemm&) {
  PLM_CHECK(false) << "gemm_bf16_prepacked: this CPU has no AVX512-BF16";
}
void sgemm_bf16_packed(const Sgemm&) { PLM_CHECK(false) << "sgemm_bf16_packed: this CPU has no AVX512-BF16"; }
#endif

bool weight_panels_fit(int64_t n, int64_t k) { return n % kWeightPanelRows == 0 && k % 2 == 0; }

// Word (row r, pair p) of the row-major (N, K) matrix moves to [r / 32][p][r % 32]: one panel per task, through a
// copy of the panel (its span is the same in both layouts).
void pack_weight_panels(bf16* w, int64_t n, int64_t k) {
  PLM_CHECK(weight_panels_fit(n, k)) << "weight panels need N a multiple of " << kWeightPanelRows
                                     << " and K even, got N " << n << ", K " << k;
  const int64_t pairs = k / 2, panel_words = kWeightPanelRows * pairs;
#pragma omp parallel for if (n * k >= kMinParallelWork)
  for (int64_t panel = 0; panel < n / kWeightPanelRows; ++panel) {
    thread_local std::vector<uint32_t> row_major;
    row_major.resize(static_cast<size_t>(panel_words));
    bf16* span = w + panel * panel_words * 2;
    std::memcpy(row_major.data(), span, static_cast<size_t>(panel_words) * sizeof(uint32_t));
    for (int64_t j = 0; j < kWeightPanelRows; ++j) {
      for (int64_t p = 0; p < pairs; ++p) {
        std::memcpy(static_cast<void*>(span + 2 * (p * kWeightPanelRows + j)), &row_major[j * pairs + p],
                    sizeof(uint32_t));
      }
    }
  }
}

void sgemm_bf16(const Sgemm& g, Bf16InputKernel kernel) {
  if (g.m == 0 || g.n == 0) return;
  if (kernel != Bf16InputKernel::kWidened) return sgemm_bf16_packed(g);
  // Both operands rounded into f32 copies (round_to_bf16's vector rounding, widened back exactly), then sgemm:
  // exact products, f32 sums, as vdpbf16ps computes. Per-thread buffers: this is training's path on CPUs
  // without AVX512-BF16, called per projection, and fresh buffers would page-fault every call.
  thread_local std::vector<bf16> staged;
  thread_local std::vector<float> a, b;
  const auto rounded = [](const float* x, int64_t count, std::vector<float>& out) {
    staged.resize(static_cast<size_t>(count));
    out.resize(static_cast<size_t>(count));
    round_to_bf16(x, staged.data(), count);
    std::transform(staged.begin(), staged.end(), out.begin(), [](bf16 v) { return static_cast<float>(v); });
  };
  rounded(g.a, g.m * g.k, a);
  rounded(g.b, g.k * g.n, b);
  Sgemm widened = g;
  widened.a = a.data();
  widened.b = b.data();
  sgemm(widened);
}

void sgemm_bf16(const Sgemm& g) {
  sgemm_bf16(g, cpu_has_avx512_bf16() ? Bf16InputKernel::kPackedBf16 : Bf16InputKernel::kWidened);
}

}  // namespace plm::cpu
