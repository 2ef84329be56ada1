// The bf16 compute mode's GEMM for many activation rows (prefill, the vision tower, batched decode): the
// activations rounded to bf16 and multiplied by the bf16 weights with f32 sums, as an outer product over
// packed pair words (vdpbf16ps; see gemm_bf16_packed.cc). Needs cpu_has_avx512_bf16(). gemm_bf16_inputs picks
// it from kPackedMinRows rows on.
#pragma once

#include <cstdint>

#include "core/kernels/cpu/gemm_bf16.h"
#include "core/kernels/cpu/sgemm.h"
#include "core/tensor.h"

namespace plm::cpu {

void gemm_bf16_packed(const Bf16WeightGemm& g);

// Weights packed once, at load, into the layout the packed GEMM's tiles read ("weight panels"): an (N, K) bf16
// matrix becomes N / 32 panels of K / 2 pair words x 32 columns, word [panel][p][j] = elements (2p, 2p + 1) of
// row 32 panel + j. Same size as the matrix; needs N a multiple of kWeightPanelRows and K even. A row range
// [r0, r1) with both ends multiples of kWeightPanelRows is still the span r0 K .. r1 K of the elements.
inline constexpr int64_t kWeightPanelRows = 32;
bool weight_panels_fit(int64_t n, int64_t k);
// Rewrites w (N, K) in place from row-major to weight panels.
void pack_weight_panels(bf16* w, int64_t n, int64_t k);
// c = alpha a w^T + beta c with g.w in weight panels, for any M: the same tiles and summation order as
// gemm_bf16_packed (so a row's result does not depend on how many rows share the call), without packing w per
// call, and one weight stream per thread at M = 1 (decode reads 15-25 % faster than the dot tiles' eight rows).
void gemm_bf16_prepacked(const Bf16WeightGemm& g);
// embedding_forward (kernel_signatures.inc) on a bf16 table stored in weight panels: a tied embedding whose LM
// head was packed.
void embedding_forward_weight_panels(Tensor out, Tensor ids, Tensor table, int64_t vocab_start);

// Training's bf16 compute mode (MatmulOptions::compute = kBF16 with f32 operands, e.g. f32 master weights): the
// f32 GEMM of sgemm.h with both operands rounded to bf16 (nearest even) and f32 sums, as PyTorch autocast
// multiplies. kPackedBf16 (needs AVX512-BF16) packs them for the vdpbf16ps tiles in any transposition;
// kWidened rounds them into f32 copies for sgemm (exact products: the two differ in summation order only).
// The first overload picks kPackedBf16 where the CPU has AVX512-BF16.
void sgemm_bf16(const Sgemm& g);
void sgemm_bf16(const Sgemm& g, Bf16InputKernel kernel);

}  // namespace plm::cpu
