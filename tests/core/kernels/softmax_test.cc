// plm::cpu::softmax_forward/backward over the last dim against a double-precision reference and finite
// differences; large logits must not overflow (the row max is subtracted).
#include <algorithm>
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

// Row-wise softmax of the (rows, dim) values in double.
std::vector<double> reference_softmax(const std::vector<double>& x, int64_t dim) {
  std::vector<double> y(x.size());
  for (size_t begin = 0; begin < x.size(); begin += dim) {
    const double row_max = *std::max_element(x.begin() + begin, x.begin() + begin + dim);
    double sum = 0.0;
    for (int64_t d = 0; d < dim; ++d) sum += std::exp(x[begin + d] - row_max);
    for (int64_t d = 0; d < dim; ++d) y[begin + d] = std::exp(x[begin + d] - row_max) / sum;
  }
  return y;
}

TEST(CpuSoftmaxTest, ForwardAndBackwardMatchReference) {
  for (const Shape& shape : {Shape{1, 1}, Shape{3, 17}, Shape{2, 3, 65}, Shape{33}, Shape{65, 1}, Shape{257, 129}}) {
    const std::string label = shape.to_string();
    OwnedTensor x = random_tensor(shape, 1, -5.0f, 5.0f);
    OwnedTensor dy = random_tensor(shape, 2);
    OwnedTensor y(shape, DType::kF32), dx(shape, DType::kF32);
    cpu::softmax_forward(y, x);
    cpu::softmax_backward(dx, dy, y);
    const int64_t dim = shape[-1];
    const std::vector<double> y_ref = reference_softmax(to_doubles(x), dim), g = to_doubles(dy);
    std::vector<double> dx_ref(g.size());
    for (size_t begin = 0; begin < g.size(); begin += dim) {
      double dot = 0.0;
      for (int64_t d = 0; d < dim; ++d) dot += g[begin + d] * y_ref[begin + d];
      for (int64_t d = 0; d < dim; ++d) dx_ref[begin + d] = y_ref[begin + d] * (g[begin + d] - dot);
    }
    EXPECT_TRUE(close_to_reference(y, y_ref, 1e-7, 1e-5, "err_y" + label)) << label;
    EXPECT_TRUE(close_to_reference(dx, dx_ref, 1e-7, 1e-5, "err_dx" + label)) << label;
  }
}

TEST(CpuSoftmaxTest, LargeLogitsStayFinite) {
  OwnedTensor x = random_tensor({3, 17}, 3, 1000.0f, 1100.0f);
  OwnedTensor y({3, 17}, DType::kF32);
  cpu::softmax_forward(y, x);
  EXPECT_TRUE(close_to_reference(y, reference_softmax(to_doubles(x), 17), 1e-7, 1e-4, "err_y_large"));
}

TEST(CpuSoftmaxTest, BackwardMatchesFiniteDifferences) {
  OwnedTensor x = random_tensor({3, 17}, 4, -3.0f, 3.0f);
  OwnedTensor g = random_tensor({3, 17}, 5);
  OwnedTensor y({3, 17}, DType::kF32), dx({3, 17}, DType::kF32);
  const auto loss = [&] {
    cpu::softmax_forward(y, x);
    return testing::dot(y, g);
  };
  const std::vector<double> numeric = testing::finite_difference(x, loss, 1e-2f);
  loss();  // y of the unperturbed x
  cpu::softmax_backward(dx, g, y);
  EXPECT_TRUE(close_to_reference(dx, numeric, 1e-4, 1e-2, "err_dx_vs_fd"));
}

TEST(CpuSoftmaxTest, InPlace) {
  OwnedTensor x = random_tensor({5, 33}, 6, -5.0f, 5.0f);
  OwnedTensor dy = random_tensor({5, 33}, 7);
  OwnedTensor y({5, 33}, DType::kF32), dx({5, 33}, DType::kF32);
  cpu::softmax_forward(y, x);
  cpu::softmax_backward(dx, dy, y);
  cpu::softmax_forward(x, x);
  cpu::softmax_backward(dy, dy, y);
  EXPECT_EQ(testing::max_abs_diff(x, y), 0.0f);
  EXPECT_EQ(testing::max_abs_diff(dy, dx), 0.0f);
}

}  // namespace
}  // namespace plm
