// The bf16 compute mode's GEMM for many activation rows (prefill, the vision tower, batched decode): the
// activations rounded to bf16 and multiplied by the bf16 weights with f32 sums, as an outer product over
// packed pair words (vdpbf16ps; see gemm_bf16_packed.cc). Needs cpu_has_avx512_bf16(). gemm_bf16_inputs picks
// it from kPackedMinRows rows on.
#pragma once

#include <cstdint>

#include "core/kernels/cpu/gemm_bf16.h"

namespace plm::cpu {

void gemm_bf16_packed(const Bf16WeightGemm& g);

}  // namespace plm::cpu
