// CPU GEMMs with bf16 weights in the nn.Linear layout: c (M, N) = alpha * a (M, K) w (N, K)^T + beta * c, with
// a and c f32. The weights stay bf16 in memory, half the bytes of f32 (batch-1 decode is bound by reading
// them). Two modes:
// - gemm_bf16_weights (the f32 oracle): weights widened to f32 in registers, which is exact: the result differs
//   from the f32 GEMM on the widened weights only in accumulation order. Activations are never rounded.
// - gemm_bf16_inputs (the bf16 compute mode): activations rounded to bf16 first (nearest even, as PyTorch holds
//   a bf16 activation), then bf16 x bf16 products summed in f32: vdpbf16ps where the CPU has AVX512-BF16, else
//   the widening kernels on the rounded activations (every product is exact in f32 either way, so the two
//   differ only in summation order and in vdpbf16ps flushing subnormals).
// Calls from different threads are independent (scratch buffers are per calling thread).
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace plm::cpu {

// Instruction sets with a kernel here, narrowest first. AVX-512 means AVX-512F; AVX2 means AVX2 + FMA.
enum class SimdIsa { kScalar, kAvx2, kAvx512 };

SimdIsa best_simd_isa();  // the widest one this CPU (and OS) runs
const char* simd_isa_name(SimdIsa isa);
bool cpu_has_avx512_bf16();  // vdpbf16ps (AVX512-BF16 with AVX512-BW and -VL for the masked loads)

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

// The bf16 compute mode's GEMM. kDotBf16 (the dot-product tiles, for few rows) and kPackedBf16 (the outer
// product over packed operands of gemm_bf16_packed.h, for many) need cpu_has_avx512_bf16(); kWidened runs
// anywhere (and is what the first overload picks without AVX512-BF16).
enum class Bf16InputKernel { kDotBf16, kPackedBf16, kWidened };
void gemm_bf16_inputs(const Bf16WeightGemm& g);
void gemm_bf16_inputs(const Bf16WeightGemm& g, Bf16InputKernel kernel);

// dst[i] = bf16(src[i]) (nearest even, NaN kept), bit-identical to bf16's constructor, vectorised.
void round_to_bf16(const float* src, bf16* dst, int64_t count);
// The same on the calling thread only, for short rows inside parallel regions (no OpenMP call per row).
void round_to_bf16_serial(const float* src, bf16* dst, int64_t count);

}  // namespace plm::cpu
