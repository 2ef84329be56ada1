// plm::cpu::dropout_forward: kept elements are x / (1 - p) and the rest 0, the keep rate is 1 - p, the
// mask is a function of (row key, salt, column) only (same keys: same mask, whatever the row order), a
// different salt or key draws another mask, p = 0 keeps everything, and in place works.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/kernels/backends.h"
#include "tests/core/test_util.h"

namespace plm {
namespace {

using testing::random_tensor;
using testing::to_vector;

OwnedTensor keys_of(const std::vector<int64_t>& values) {
  OwnedTensor t({static_cast<int64_t>(values.size())}, DType::kI64);
  std::copy(values.begin(), values.end(), t.data_as<int64_t>());
  return t;
}

std::vector<int64_t> counting_keys(int64_t rows, int64_t first) {
  std::vector<int64_t> keys;
  for (int64_t r = 0; r < rows; ++r) keys.push_back(first + r * 7919);
  return keys;
}

TEST(CpuDropoutTest, KeepsAtRateOneMinusPAndScales) {
  const int64_t rows = 200, dim = 300;
  const float p = 0.3f;
  OwnedTensor x = random_tensor({rows, dim}, 1, 0.5f, 1.5f);  // never 0: a zero output means dropped
  OwnedTensor y({rows, dim}, DType::kF32);
  const OwnedTensor keys = keys_of(counting_keys(rows, 11));
  cpu::dropout_forward(y, x, keys, /*salt=*/5, p);
  const std::vector<float> xv = to_vector(x), yv = to_vector(y);
  int64_t kept = 0;
  for (size_t i = 0; i < xv.size(); ++i) {
    if (yv[i] == 0.0f) continue;
    ++kept;
    EXPECT_EQ(yv[i], xv[i] * (1.0f / (1.0f - p))) << i;
  }
  // 60000 Bernoulli(0.7) draws: standard deviation ~112 elements.
  EXPECT_NEAR(static_cast<double>(kept) / static_cast<double>(xv.size()), 1.0 - p, 0.006);
}

TEST(CpuDropoutTest, MaskIsAFunctionOfTheKeys) {
  const int64_t rows = 8, dim = 64;
  OwnedTensor x = random_tensor({rows, dim}, 2, 0.5f, 1.5f);
  std::vector<int64_t> keys = counting_keys(rows, 3);
  OwnedTensor first({rows, dim}, DType::kF32), again({rows, dim}, DType::kF32);
  cpu::dropout_forward(first, x, keys_of(keys), 9, 0.5f);
  cpu::dropout_forward(again, x, keys_of(keys), 9, 0.5f);
  EXPECT_EQ(to_vector(first), to_vector(again));

  // Row 5 alone, with its key: the same row of the mask.
  OwnedTensor row({1, dim}, DType::kF32);
  OwnedTensor x_row({1, dim}, DType::kF32);
  copy_tensor(x_row, x.view().slice(0, 5, 6));
  cpu::dropout_forward(row, x_row, keys_of({keys[5]}), 9, 0.5f);
  const std::vector<float> all = to_vector(first), alone = to_vector(row);
  EXPECT_EQ(alone, std::vector<float>(all.begin() + 5 * dim, all.begin() + 6 * dim));

  // Another salt (another projection) or another key draws another mask.
  OwnedTensor other_salt({rows, dim}, DType::kF32), other_key({rows, dim}, DType::kF32);
  cpu::dropout_forward(other_salt, x, keys_of(keys), 10, 0.5f);
  keys[0] += 1;
  cpu::dropout_forward(other_key, x, keys_of(keys), 9, 0.5f);
  EXPECT_NE(to_vector(other_salt), to_vector(first));
  const std::vector<float> changed = to_vector(other_key);
  const auto rows_of = [&](const std::vector<float>& v, int64_t first, int64_t last) {
    return std::vector<float>(v.begin() + first * dim, v.begin() + last * dim);
  };
  EXPECT_NE(rows_of(changed, 0, 1), rows_of(all, 0, 1));        // row 0's key changed
  EXPECT_EQ(rows_of(changed, 1, rows), rows_of(all, 1, rows));  // the other rows' did not
}

TEST(CpuDropoutTest, ZeroProbabilityKeepsAllAndInPlaceWorks) {
  OwnedTensor x = random_tensor({5, 33}, 3);
  const OwnedTensor keys = keys_of(counting_keys(5, 1));
  OwnedTensor y({5, 33}, DType::kF32);
  cpu::dropout_forward(y, x, keys, 1, 0.0f);
  EXPECT_EQ(to_vector(y), to_vector(x));
  OwnedTensor expected({5, 33}, DType::kF32);
  cpu::dropout_forward(expected, x, keys, 1, 0.25f);
  cpu::dropout_forward(x, x, keys, 1, 0.25f);
  EXPECT_EQ(to_vector(x), to_vector(expected));
}

}  // namespace
}  // namespace plm
