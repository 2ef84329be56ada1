// The bf16 compute mode's GEMM for many activation rows (prefill, the vision tower, batched decode): the
// activations rounded to bf16 and multiplied by the bf16 weights with f32 sums, as an outer product over
// packed pair words (vdpbf16ps; see gemm_bf16_packed.cc). Needs cpu_has_avx512_bf16(). gemm_bf16_inputs picks
// it from kPackedMinRows rows on.
#pragma once

#include <cstdint>

#include "core/kernels/cpu/gemm_bf16.h"
#include "core/kernels/cpu/sgemm.h"

namespace plm::cpu {

void gemm_bf16_packed(const Bf16WeightGemm& g);

// Training's bf16 compute mode (MatmulOptions::compute = kBF16 with f32 operands, e.g. f32 master weights): the
// f32 GEMM of sgemm.h with both operands rounded to bf16 (nearest even) and f32 sums, as PyTorch autocast
// multiplies. kPackedBf16 (needs AVX512-BF16) packs them for the vdpbf16ps tiles in any transposition;
// kWidened rounds them into f32 copies for sgemm (exact products: the two differ in summation order only).
// The first overload picks kPackedBf16 where the CPU has AVX512-BF16.
void sgemm_bf16(const Sgemm& g);
void sgemm_bf16(const Sgemm& g, Bf16InputKernel kernel);

}  // namespace plm::cpu
