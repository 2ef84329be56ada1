// plm::cpu::rmsnorm_forward/backward against a double-precision reference and finite differences, and the
// parameter-grad accumulation rule (dw +=).
#include <cmath>
#include <string>
#include <vector>

#include "core/kernels/backends.h"
#include "tests/core/kernels/reference_check.h"
#include "tests/core/test_util.h"

namespace plm {
namespace {

using testing::close_to_reference;
using testing::random_tensor;
using testing::to_doubles;

constexpr float kEps = 1e-5f;

struct Reference {
  std::vector<double> y, rstd, dx, dw;
};

// Forward and backward of y = x * rstd * w in double; dw is the gradient alone (no prior value).
Reference reference(Tensor x, Tensor w, Tensor dy) {
  const int64_t num_rows = x.size(0), dim = x.size(1);
  const std::vector<double> xv = to_doubles(x), wv = to_doubles(w), g = to_doubles(dy);
  Reference ref{std::vector<double>(xv.size()), std::vector<double>(num_rows), std::vector<double>(xv.size()),
                std::vector<double>(dim)};
  for (int64_t n = 0; n < num_rows; ++n) {
    const double* xr = xv.data() + n * dim;
    const double* gr = g.data() + n * dim;
    double sum_squares = 0.0, dot = 0.0;
    for (int64_t d = 0; d < dim; ++d) {
      sum_squares += xr[d] * xr[d];
      dot += gr[d] * wv[d] * xr[d];
    }
    const double r = 1.0 / std::sqrt(sum_squares / dim + kEps);
    ref.rstd[n] = r;
    for (int64_t d = 0; d < dim; ++d) {
      ref.y[n * dim + d] = xr[d] * r * wv[d];
      ref.dx[n * dim + d] = r * wv[d] * gr[d] - r * r * r * xr[d] * dot / dim;
      ref.dw[d] += gr[d] * xr[d] * r;
    }
  }
  return ref;
}

// The last shape exceeds kMinParallelWork, so the threaded path runs too.
const int64_t kShapes[][2] = {{1, 1}, {3, 17}, {17, 65}, {4, 33}, {65, 3}, {257, 129}, {5, 2049}};

std::string shape_label(const char* what, int64_t rows, int64_t dim) {
  return std::string(what) + "_" + std::to_string(rows) + "x" + std::to_string(dim);
}

TEST(CpuRmsNormTest, ForwardMatchesReference) {
  for (const auto& [rows, dim] : kShapes) {
    OwnedTensor x = random_tensor({rows, dim}, 1, -2.0f, 2.0f);
    OwnedTensor w = random_tensor({dim}, 2);
    OwnedTensor y({rows, dim}, DType::kF32), rstd({rows}, DType::kF32);
    cpu::rmsnorm_forward(y, rstd, x, w, kEps);
    const Reference ref = reference(x, w, x);
    EXPECT_TRUE(close_to_reference(y, ref.y, 1e-6, 1e-5, shape_label("err_y", rows, dim)));
    EXPECT_TRUE(close_to_reference(rstd, ref.rstd, 0.0, 1e-6, shape_label("err_rstd", rows, dim)));
  }
}

TEST(CpuRmsNormTest, InferenceWithoutRstdGivesTheSameOutput) {
  OwnedTensor x = random_tensor({5, 33}, 3);
  OwnedTensor w = random_tensor({33}, 4);
  OwnedTensor y({5, 33}, DType::kF32), y_inference({5, 33}, DType::kF32), rstd({5}, DType::kF32);
  cpu::rmsnorm_forward(y, rstd, x, w, kEps);
  cpu::rmsnorm_forward(y_inference, Tensor(), x, w, kEps);
  EXPECT_EQ(testing::max_abs_diff(y, y_inference), 0.0f);
}

TEST(CpuRmsNormTest, BackwardMatchesReference) {
  for (const auto& [rows, dim] : kShapes) {
    OwnedTensor x = random_tensor({rows, dim}, 5, -2.0f, 2.0f);
    OwnedTensor w = random_tensor({dim}, 6);
    OwnedTensor dy = random_tensor({rows, dim}, 7);
    OwnedTensor y({rows, dim}, DType::kF32), rstd({rows}, DType::kF32);
    OwnedTensor dx({rows, dim}, DType::kF32), dw({dim}, DType::kF32);
    cpu::fill(dw, 0.0f);
    cpu::rmsnorm_forward(y, rstd, x, w, kEps);
    cpu::rmsnorm_backward(dx, dw, dy, x, w, rstd);
    const Reference ref = reference(x, w, dy);
    EXPECT_TRUE(close_to_reference(dx, ref.dx, 1e-5, 1e-5, shape_label("err_dx", rows, dim)));
    EXPECT_TRUE(close_to_reference(dw, ref.dw, 1e-5, 1e-5, shape_label("err_dw", rows, dim)));
  }
}

TEST(CpuRmsNormTest, BackwardMatchesFiniteDifferences) {
  OwnedTensor x = random_tensor({3, 17}, 8);
  OwnedTensor w = random_tensor({17}, 9);
  OwnedTensor g = random_tensor({3, 17}, 10);
  OwnedTensor y({3, 17}, DType::kF32), rstd({3}, DType::kF32);
  const auto loss = [&] {
    cpu::rmsnorm_forward(y, rstd, x, w, kEps);
    return testing::dot(y, g);
  };
  const std::vector<double> numeric_dx = testing::finite_difference(x, loss, 1e-2f);
  const std::vector<double> numeric_dw = testing::finite_difference(w, loss, 1e-2f);
  OwnedTensor dx({3, 17}, DType::kF32), dw({17}, DType::kF32);
  cpu::fill(dw, 0.0f);
  loss();  // rstd for the unperturbed x
  cpu::rmsnorm_backward(dx, dw, g, x, w, rstd);
  EXPECT_TRUE(close_to_reference(dx, numeric_dx, 1e-3, 1e-2, "err_dx_vs_fd"));
  EXPECT_TRUE(close_to_reference(dw, numeric_dw, 1e-3, 1e-2, "err_dw_vs_fd"));
}

TEST(CpuRmsNormTest, BackwardTwiceDoublesDw) {
  OwnedTensor x = random_tensor({17, 33}, 11);
  OwnedTensor w = random_tensor({33}, 12);
  OwnedTensor dy = random_tensor({17, 33}, 13);
  OwnedTensor y({17, 33}, DType::kF32), rstd({17}, DType::kF32), dx({17, 33}, DType::kF32);
  OwnedTensor once({33}, DType::kF32), twice({33}, DType::kF32);
  cpu::fill(once, 0.0f);
  cpu::fill(twice, 0.0f);
  cpu::rmsnorm_forward(y, rstd, x, w, kEps);
  cpu::rmsnorm_backward(dx, once, dy, x, w, rstd);
  cpu::rmsnorm_backward(dx, twice, dy, x, w, rstd);
  cpu::rmsnorm_backward(dx, twice, dy, x, w, rstd);
  std::vector<double> doubled = to_doubles(once);
  for (double& v : doubled) v *= 2.0;
  EXPECT_TRUE(close_to_reference(twice, doubled, 1e-6, 1e-6, "err_twice"));
}

TEST(CpuRmsNormTest, BackwardInPlaceOverDy) {
  OwnedTensor x = random_tensor({3, 17}, 14);
  OwnedTensor w = random_tensor({17}, 15);
  OwnedTensor dy = random_tensor({3, 17}, 16);
  OwnedTensor y({3, 17}, DType::kF32), rstd({3}, DType::kF32), dw({17}, DType::kF32);
  cpu::fill(dw, 0.0f);
  cpu::rmsnorm_forward(y, rstd, x, w, kEps);
  const Reference ref = reference(x, w, dy);
  cpu::rmsnorm_backward(dy, dw, dy, x, w, rstd);
  EXPECT_TRUE(close_to_reference(dy, ref.dx, 1e-5, 1e-5, "err_dx_in_place"));
  EXPECT_TRUE(close_to_reference(dw, ref.dw, 1e-5, 1e-5, "err_dw_in_place"));
}

}  // namespace
}  // namespace plm
