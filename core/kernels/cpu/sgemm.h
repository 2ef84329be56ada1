// One row-major f32 GEMM on packed operands, the engine under the CPU matmul: OpenBLAS sgemm when the
// build has it, else a plain loop (GPU machines build without OpenBLAS).
#pragma once

#include <cstdint>

namespace plm::cpu {

// c (M, N), row stride ldc >= N, = alpha * op(a) op(b) + beta * c; a (M, K) or (K, M) with trans_a, b (K, N) or
// (N, K) with trans_b. With beta == 0, c is overwritten and never read.
struct Sgemm {
  const float* a;
  const float* b;
  float* c;
  int64_t m, n, k;
  bool trans_a, trans_b;
  float alpha, beta;
  int64_t ldc;
};

void sgemm(const Sgemm& g);

// Whether sgemm is OpenBLAS (threaded, near peak) rather than the plain loop.
bool sgemm_uses_blas();

}  // namespace plm::cpu
