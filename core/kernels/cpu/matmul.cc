// CPU GEMM: c (..., M, N) = alpha * op(a) op(b) + beta * c + bias, in f32. An f32 b goes to sgemm (OpenBLAS
// or a plain loop), or with compute kBF16 to sgemm_bf16 (both operands rounded to bf16); a bf16 b (weights,
// (N, K) with trans_b) stays bf16 and goes to the bf16-weight GEMM, which widens it in registers (or, in the bf16
// compute mode, rounds a to bf16 and multiplies bf16 pairs). With beta == 0, c is overwritten and never read (NaN
// in c does not leak).
#include "core/kernels/backends.h"
#include "core/kernels/cpu/checks.h"
#include "core/kernels/cpu/gemm_bf16.h"
#include "core/kernels/cpu/gemm_bf16_packed.h"
#include "core/kernels/cpu/parallel.h"
#include "core/kernels/cpu/sgemm.h"

namespace plm::cpu {

namespace {

// Runs every batch entry of one f32 GEMM (exact, or with both operands rounded to bf16: training's bf16
// compute mode); a 2-D b with plain a folds the batch into M.
void run_f32(Sgemm g, int64_t batch, bool shared_b, DType compute) {
  const auto gemm = [compute](const Sgemm& one) { compute == DType::kBF16 ? sgemm_bf16(one) : sgemm(one); };
  if (shared_b && !g.trans_a) {
    // Every batch entry multiplies the same b: stacking the entries' rows makes one tall GEMM.
    g.m *= batch;
    gemm(g);
    return;
  }
  for (int64_t i = 0; i < batch; ++i) {
    gemm(g);
    g.a += g.m * g.k;
    g.b += shared_b ? 0 : g.k * g.n;
    g.c += g.m * g.n;
  }
}

// The same for bf16 weights (trans_b, plain a), exact or with bf16-rounded activations.
void run_bf16(Bf16WeightGemm g, int64_t batch, bool shared_b, DType compute, bool panels) {
  const auto gemm = [compute, panels](const Bf16WeightGemm& one) {
    if (panels) return gemm_bf16_prepacked(one);
    compute == DType::kBF16 ? gemm_bf16_inputs(one) : gemm_bf16_weights(one);
  };
  if (shared_b) {
    g.m *= batch;
    gemm(g);
    return;
  }
  for (int64_t i = 0; i < batch; ++i) {
    gemm(g);
    g.a += g.m * g.k;
    g.w += g.k * g.n;
    g.c += g.m * g.n;
  }
}

}  // namespace

void matmul(Tensor c, Tensor a, Tensor b, const MatmulOptions& options, Stream) {
  check_tensor("matmul", "c", c, DType::kF32);
  check_tensor("matmul", "a", a, DType::kF32);
  PLM_CHECK(b.defined() && (b.dtype() == DType::kF32 || b.dtype() == DType::kBF16))
      << "matmul: b must be f32 or bf16, got " << b.describe();
  check_tensor("matmul", "b", b, b.dtype());
  PLM_CHECK(b.dtype() == DType::kF32 || (options.trans_b && !options.trans_a))
      << "matmul: bf16 b (weights) needs trans_b and a plain a, got b " << b.describe() << " with trans_a "
      << options.trans_a << ", trans_b " << options.trans_b;
  PLM_CHECK(options.compute == DType::kF32 || options.compute == DType::kBF16)
      << "matmul: the CPU computes in f32 or bf16, not " << dtype_name(options.compute);
  PLM_CHECK(!options.b_panels || (b.dtype() == DType::kBF16 && options.compute == DType::kBF16))
      << "matmul: weight panels are bf16 weights of the bf16 compute mode, got b " << b.describe() << ", compute "
      << dtype_name(options.compute);
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

  const bool shared_b = b.rank() == 2;
  if (b.dtype() == DType::kBF16) {
    run_bf16({.a = a.data_as<float>(), .w = b.data_as<bf16>(), .c = c.data_as<float>(), .m = m, .n = n, .k = k,
              .alpha = options.alpha, .beta = options.beta},
             batch, shared_b, options.compute, options.b_panels);
  } else {
    run_f32({.a = a.data_as<float>(), .b = b.data_as<float>(), .c = c.data_as<float>(), .m = m, .n = n, .k = k,
             .trans_a = options.trans_a, .trans_b = options.trans_b, .alpha = options.alpha, .beta = options.beta,
             .ldc = n},
            batch, shared_b, options.compute);
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
