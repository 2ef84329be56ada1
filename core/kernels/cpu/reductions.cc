// CPU reductions: column sums of a matrix (bias / LayerScale grads, optionally accumulating), the total sum
// or sum of squares of a tensor (gradient norms) and row L2 norms. Sums run in double; outputs are f32.
#include <algorithm>
#include <cmath>

#include "core/kernels/backends.h"
#include "core/kernels/cpu/checks.h"
#include "core/kernels/cpu/parallel.h"

namespace plm::cpu {

namespace {

// out (1) = sum over the elements of x of term(x[i]), in double.
template <typename Term>
void total(const char* op, Tensor out, Tensor x, const Term& term) {
  check_tensor(op, "x", x, DType::kF32);
  check_f32(op, "out", out, Shape{1});
  const float* x_data = x.data_as<float>();
  double sum = 0.0;
#pragma omp parallel for reduction(+ : sum) if (x.numel() >= kMinParallelWork)
  for (int64_t i = 0; i < x.numel(); ++i) sum += term(static_cast<double>(x_data[i]));
  out.data_as<float>()[0] = static_cast<float>(sum);
}

}  // namespace

void sum_rows(Tensor out, Tensor x, bool accumulate, Stream) {
  check_tensor("sum_rows", "x", x, DType::kF32);
  check_rank("sum_rows", "x", x, 2);
  const int64_t num_rows = x.size(0), dim = x.size(1);
  check_f32("sum_rows", "out", out, Shape{dim});
  float* out_data = out.data_as<float>();
  if (!accumulate) std::fill_n(out_data, dim, 0.0f);
  const float* x_data = x.data_as<float>();
  add_column_sums(out_data, num_rows, dim, [&](int64_t n, int64_t d) { return x_data[n * dim + d]; });
}

void sum(Tensor out, Tensor x, Stream) {
  total("sum", out, x, [](double v) { return v; });
}

void sum_squares(Tensor out, Tensor x, Stream) {
  total("sum_squares", out, x, [](double v) { return v * v; });
}

void row_norms(Tensor out, Tensor x, Stream) {
  check_tensor("row_norms", "x", x, DType::kF32);
  check_rank("row_norms", "x", x, 2);
  const int64_t num_rows = x.size(0), dim = x.size(1);
  check_f32("row_norms", "out", out, Shape{num_rows});
  const float* x_data = x.data_as<float>();
  float* out_data = out.data_as<float>();
#pragma omp parallel for if (x.numel() >= kMinParallelWork)
  for (int64_t n = 0; n < num_rows; ++n) {
    double squares = 0.0;
    for (int64_t d = 0; d < dim; ++d) squares += static_cast<double>(x_data[n * dim + d]) * x_data[n * dim + d];
    out_data[n] = static_cast<float>(std::sqrt(squares));
  }
}

}  // namespace plm::cpu
