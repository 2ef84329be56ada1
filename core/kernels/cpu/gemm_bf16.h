// CPU GEMM with bf16 weights in the nn.Linear layout: c (M, N) = alpha * a (M, K) w (N, K)^T + beta * c, with
// a and c f32. The weights stay bf16 in memory, half the bytes of f32 (batch-1 decode is bound by reading
// them), and are widened to f32 in registers, which is exact: the result differs from the f32 GEMM on the
// widened weights only in accumulation order. Activations are never rounded. Calls from different threads are
// independent (the widened-blocks path keeps an 8 MiB scratch per calling thread).
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace plm::cpu {

// Instruction sets with a kernel here, narrowest first. AVX-512 means AVX-512F; AVX2 means AVX2 + FMA.
enum class SimdIsa { kScalar, kAvx2, kAvx512 };

SimdIsa best_simd_isa();  // the widest one this CPU (and OS) runs
const char* simd_isa_name(SimdIsa isa);

struct Bf16WeightGemm {
  const float* a;  // (M, K)
  const bf16* w;   // (N, K)
  float* c;        // (M, N); with beta == 0 it is overwritten and never read
  int64_t m, n, k;
  float alpha, beta;
};

// Picks the path for the shape and the widest ISA.
void gemm_bf16_weights(const Bf16WeightGemm& g);

// The two paths, each with an ISA of the caller's choice (one this CPU runs), so tests reach every variant:
// - tiles: register tiles of widened weight rows x activation rows, dot products over K, threads splitting
//   the weight rows. Reads each weight once per 64 activation rows: bandwidth-bound for decode (small M).
// - widened blocks: blocks of weight rows widened into an f32 scratch, each multiplied by sgemm
//   (core/kernels/cpu/sgemm.h): prefill (large M) runs at BLAS speed.
void gemm_bf16_tiles(const Bf16WeightGemm& g, SimdIsa isa);
void gemm_bf16_widened_blocks(const Bf16WeightGemm& g, SimdIsa isa);

}  // namespace plm::cpu
