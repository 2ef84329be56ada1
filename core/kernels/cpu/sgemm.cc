// The f32 GEMM engine of core/kernels/cpu/sgemm.h: OpenBLAS, or a plain threaded loop without it.
#include "core/kernels/cpu/sgemm.h"

#include <algorithm>
#include <climits>
#include <vector>

#include "core/check.h"
#include "core/kernels/cpu/parallel.h"

#ifdef PLM_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace plm::cpu {

#ifdef PLM_HAVE_OPENBLAS
void sgemm(const Sgemm& g) {
  if (g.m == 0 || g.n == 0) return;
  PLM_CHECK(g.m <= INT_MAX && g.n <= INT_MAX && g.k <= INT_MAX && g.ldc <= INT_MAX)
      << "matmul: M " << g.m << ", N " << g.n << ", K " << g.k << " exceed the BLAS int range";
  // BLAS rejects a leading dimension below 1 even when the operand is empty (K == 0).
  const auto ld = [](int64_t cols) { return static_cast<blasint>(std::max<int64_t>(cols, 1)); };
  cblas_sgemm(CblasRowMajor, g.trans_a ? CblasTrans : CblasNoTrans, g.trans_b ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(g.m), static_cast<blasint>(g.n), static_cast<blasint>(g.k), g.alpha, g.a,
              ld(g.trans_a ? g.m : g.k), g.b, ld(g.trans_b ? g.k : g.n), g.beta, g.c, ld(g.ldc));
}

bool sgemm_uses_blas() { return true; }
#else
namespace {

// src (rows, cols) -> a new (cols, rows) copy in `storage`.
const float* transposed(const float* src, int64_t rows, int64_t cols, std::vector<float>& storage) {
  storage.resize(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) storage[c * rows + r] = src[r * cols + c];
  }
  return storage.data();
}

}  // namespace

// i-k-j order so the inner loop streams a row of b into a row of c; transposed operands are copied to
// the plain layout first.
void sgemm(const Sgemm& g) {
  std::vector<float> a_storage, b_storage;
  const float* a = g.trans_a ? transposed(g.a, g.k, g.m, a_storage) : g.a;  // (M, K)
  const float* b = g.trans_b ? transposed(g.b, g.n, g.k, b_storage) : g.b;  // (K, N)
#pragma omp parallel for if (g.m * g.n * g.k >= kMinParallelWork)
  for (int64_t i = 0; i < g.m; ++i) {
    float* c_row = g.c + i * g.ldc;
    for (int64_t j = 0; j < g.n; ++j) c_row[j] = g.beta == 0.0f ? 0.0f : g.beta * c_row[j];
    for (int64_t p = 0; p < g.k; ++p) {
      const float a_ip = g.alpha * a[i * g.k + p];
      const float* b_row = b + p * g.n;
      for (int64_t j = 0; j < g.n; ++j) c_row[j] += a_ip * b_row[j];
    }
  }
}

bool sgemm_uses_blas() { return false; }
#endif

}  // namespace plm::cpu
