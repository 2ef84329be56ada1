// Comparison of a kernel's output with a double-precision reference (or a finite-difference gradient) for
// the CPU kernel tests. The measured max |error| is recorded as a gtest property named by `label`
// (visible with --gtest_output=xml), so reports quote measured numbers, not just pass/fail.
#pragma once

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>
#include <string>
#include <vector>

#include "tests/core/test_util.h"

namespace plm::testing {

inline std::vector<double> to_doubles(Tensor t) {
  const std::vector<float> v = to_vector(t);
  return {v.begin(), v.end()};
}

inline ::testing::AssertionResult close_to_reference(Tensor actual, const std::vector<double>& expected,
                                                     double atol, double rtol, const std::string& label) {
  const std::vector<float> a = to_vector(actual);
  double max_error = 0.0;
  for (size_t i = 0; i < std::min(a.size(), expected.size()); ++i) {
    max_error = std::max(max_error, std::abs(a[i] - expected[i]));
  }
  std::ostringstream formatted;
  formatted << std::scientific << std::setprecision(2) << max_error;
  ::testing::Test::RecordProperty(label, formatted.str());
  return all_close(actual, expected, atol, rtol);
}

}  // namespace plm::testing
