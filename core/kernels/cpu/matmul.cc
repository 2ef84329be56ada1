// CPU GEMM: c (..., M, N) = alpha * op(a) op(b) + beta * c + bias, in f32. OpenBLAS sgemm when the build
// has it, else a plain loop (GPU machines build without OpenBLAS). A bf16 b (stored weights) is widened
// to an f32 copy per call. With beta == 0, c is overwritten and never read (NaN in c does not leak).
#include <algorithm>
#include <climits>
#include <vector>

#include "core/kernels/backends.h"
#include "core/kernels/cpu/checks.h"
#include "core/kernels/cpu/parallel.h"

#ifdef PLM_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace plm::cpu {

namespace {

// One row-major GEMM on packed operands: a (M, K) or (K, M), b (K, N) or (N, K), c (M, N).
struct Gemm {
  const float* a;
  const float* b;
  float* c;
  int64_t m, n, k;
  bool trans_a, trans_b;
  float alpha, beta;
};

#ifdef PLM_HAVE_OPENBLAS
void run_gemm(const Gemm& g) {
  if (g.m == 0 || g.n == 0) return;
  PLM_CHECK(g.m <= INT_MAX && g.n <= INT_MAX && g.k <= INT_MAX)
      << "matmul: M " << g.m << ", N " << g.n << ", K " << g.k << " exceed the BLAS int range";
  // BLAS rejects a leading dimension below 1 even when the operand is empty (K == 0).
  const auto ld = [](int64_t cols) { return static_cast<blasint>(std::max<int64_t>(cols, 1)); };
  cblas_sgemm(CblasRowMajor, g.trans_a ? CblasTrans : CblasNoTrans, g.trans_b ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(g.m), static_cast<blasint>(g.n), static_cast<blasint>(g.k), g.alpha, g.a,
              ld(g.trans_a ? g.m : g.k), g.b, ld(g.trans_b ? g.k : g.n), g.beta, g.c, ld(g.n));
}
#else
// src (rows, cols) -> a new (cols, rows) copy in `storage`.
const float* transposed(const float* src, int64_t rows, int64_t cols, std::vector<float>& storage) {
  storage.resize(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) storage[c * rows + r] = src[r * cols + c];
  }
  return storage.data();
}

// i-k-j order so the inner loop streams a row of b into a row of c; transposed operands are copied to
// the plain layout first.
void run_gemm(const Gemm& g) {
  std::vector<float> a_storage, b_storage;
  const float* a = g.trans_a ? transposed(g.a, g.k, g.m, a_storage) : g.a;  // (M, K)
  const float* b = g.trans_b ? transposed(g.b, g.n, g.k, b_storage) : g.b;  // (K, N)
#pragma omp parallel for if (g.m * g.n * g.k >= kMinParallelWork)
  for (int64_t i = 0; i < g.m; ++i) {
    float* c_row = g.c + i * g.n;
    for (int64_t j = 0; j < g.n; ++j) c_row[j] = g.beta == 0.0f ? 0.0f : g.beta * c_row[j];
    for (int64_t p = 0; p < g.k; ++p) {
      const float a_ip = g.alpha * a[i * g.k + p];
      const float* b_row = b + p * g.n;
      for (int64_t j = 0; j < g.n; ++j) c_row[j] += a_ip * b_row[j];
    }
  }
}
#endif

// b as f32: the tensor itself, or a widened copy of bf16 weights held in `storage`.
const float* f32_data(const Tensor& b, std::vector<float>& storage) {
  if (b.dtype() == DType::kF32) return b.data_as<float>();
  const bf16* src = b.data_as<bf16>();
  storage.resize(static_cast<size_t>(b.numel()));
#pragma omp parallel for if (b.numel() >= kMinParallelWork)
  for (int64_t i = 0; i < b.numel(); ++i) storage[i] = static_cast<float>(src[i]);
  return storage.data();
}

}  // namespace

void matmul(Tensor c, Tensor a, Tensor b, const MatmulOptions& options, Stream) {
  check_tensor("matmul", "c", c, DType::kF32);
  check_tensor("matmul", "a", a, DType::kF32);
  PLM_CHECK(b.defined() && (b.dtype() == DType::kF32 || b.dtype() == DType::kBF16))
      << "matmul: b must be f32 or bf16, got " << b.describe();
  check_tensor("matmul", "b", b, b.dtype());
  const int rank = c.rank();
  PLM_CHECK(rank >= 2 && a.rank() == rank && (b.rank() == rank || b.rank() == 2))
      << "matmul: ranks of c " << c.describe() << ", a " << a.describe() << ", b " << b.describe();

  const int64_t m = c.size(-2), n = c.size(-1);
  const int64_t k = options.trans_a ? a.size(-2) : a.size(-1);
  const int64_t a_m = options.trans_a ? a.size(-1) : a.size(-2);
  const int64_t b_k = options.trans_b ? b.size(-1) : b.size(-2);
  const int64_t b_n = options.trans_b ? b.size(-2) : b.size(-1);
  PLM_CHECK(a_m == m && b_k == k && b_n == n)
      << "matmul: c " << c.describe() << " = op(a " << a.describe() << ") op(b " << b.describe()
      << ") with trans_a " << options.trans_a << ", trans_b " << options.trans_b;
  int64_t batch = 1;
  for (int d = 0; d < rank - 2; ++d) {
    PLM_CHECK(a.size(d) == c.size(d) && (b.rank() == 2 || b.size(d) == c.size(d)))
        << "matmul: batch dims differ: c " << c.describe() << ", a " << a.describe() << ", b " << b.describe();
    batch *= c.size(d);
  }
  const Tensor& bias = options.bias;
  if (bias.defined()) {
    check_tensor("matmul", "bias", bias, DType::kF32);
    check_shape("matmul", "bias", bias, Shape{n});
  }

  std::vector<float> b_storage;
  const float* b_data = f32_data(b, b_storage);
  Gemm g{a.data_as<float>(), b_data, c.data_as<float>(), m, n, k, options.trans_a, options.trans_b,
         options.alpha, options.beta};
  const bool shared_b = b.rank() == 2;
  if (shared_b && !options.trans_a) {
    // Every batch entry multiplies the same b: stacking the entries' rows makes one tall GEMM.
    g.m = batch * m;
    run_gemm(g);
  } else {
    for (int64_t i = 0; i < batch; ++i) {
      run_gemm(g);
      g.a += m * k;
      g.b += shared_b ? 0 : k * n;
      g.c += m * n;
    }
  }

  if (bias.defined()) {
    const float* bias_data = bias.data_as<float>();
    float* c_data = c.data_as<float>();
    const int64_t num_rows = batch * m;
#pragma omp parallel for if (c.numel() >= kMinParallelWork)
    for (int64_t r = 0; r < num_rows; ++r) {
      for (int64_t j = 0; j < n; ++j) c_data[r * n + j] += bias_data[j];
    }
  }
}

}  // namespace plm::cpu
