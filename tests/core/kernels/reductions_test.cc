// plm::cpu::sum_rows (written or accumulated), sum, sum_squares and row_norms against double references;
// the totals sum in double, so a large tensor's result is within one float rounding of the exact value.
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

std::vector<double> column_sums(Tensor x) {
  const int64_t dim = x.size(1);
  const std::vector<double> xv = to_doubles(x);
  std::vector<double> sums(static_cast<size_t>(dim));
  for (size_t i = 0; i < xv.size(); ++i) sums[i % dim] += xv[i];
  return sums;
}

TEST(CpuReductionsTest, SumRowsWritesOrAccumulates) {
  for (const auto& [rows, dim] : {std::pair<int64_t, int64_t>{1, 1}, {17, 65}, {65, 3}, {1000, 129}}) {
    const std::string label = std::to_string(rows) + "x" + std::to_string(dim);
    OwnedTensor x = random_tensor({rows, dim}, 1);
    OwnedTensor out = random_tensor({dim}, 2);  // stale values must be overwritten
    const std::vector<double> sums = column_sums(x);
    cpu::sum_rows(out, x, /*accumulate=*/false);
    EXPECT_TRUE(close_to_reference(out, sums, 1e-6, 1e-6, "err_write_" + label)) << label;
    cpu::sum_rows(out, x, /*accumulate=*/true);
    std::vector<double> doubled = sums;
    for (double& v : doubled) v *= 2.0;
    EXPECT_TRUE(close_to_reference(out, doubled, 1e-6, 1e-6, "err_accumulate_" + label)) << label;
  }
}

TEST(CpuReductionsTest, SumRowsOfNoRows) {
  OwnedTensor x({0, 5}, DType::kF32);
  OwnedTensor out = random_tensor({5}, 3);
  cpu::sum_rows(out, x, /*accumulate=*/false);
  EXPECT_TRUE(close_to_reference(out, std::vector<double>(5), 0.0, 0.0, "err_empty"));
}

TEST(CpuReductionsTest, SumAndSumSquaresMatchReference) {
  for (const Shape& shape : {Shape{1}, Shape{3, 17}, Shape{33, 65}, Shape{1000, 1001}}) {
    const std::string label = shape.to_string();
    OwnedTensor x = random_tensor(shape, 4, -1.0f, 3.0f);
    OwnedTensor total({1}, DType::kF32), total_squares({1}, DType::kF32);
    cpu::sum(total, x);
    cpu::sum_squares(total_squares, x);
    double s = 0.0, ss = 0.0;
    for (const double v : to_doubles(x)) {
      s += v;
      ss += v * v;
    }
    // Double accumulation: only the final rounding to f32 remains (half an ulp, 2^-24 relative).
    EXPECT_TRUE(close_to_reference(total, {s}, 1e-30, 6e-8, "err_sum" + label)) << label;
    EXPECT_TRUE(close_to_reference(total_squares, {ss}, 1e-30, 6e-8, "err_sum_squares" + label)) << label;
  }
}

TEST(CpuReductionsTest, RowNormsMatchReference) {
  for (const auto& [rows, dim] : {std::pair<int64_t, int64_t>{1, 1}, {17, 65}, {300, 1001}}) {
    const std::string label = std::to_string(rows) + "x" + std::to_string(dim);
    OwnedTensor x = random_tensor({rows, dim}, 5, -2.0f, 1.0f);
    OwnedTensor out = random_tensor({rows}, 6);
    cpu::row_norms(out, x);
    const std::vector<double> xv = to_doubles(x);
    std::vector<double> norms(static_cast<size_t>(rows));
    for (size_t i = 0; i < xv.size(); ++i) norms[i / dim] += xv[i] * xv[i];
    for (double& n : norms) n = std::sqrt(n);
    EXPECT_TRUE(close_to_reference(out, norms, 1e-30, 6e-8, "err_row_norms_" + label)) << label;
  }
}

}  // namespace
}  // namespace plm
