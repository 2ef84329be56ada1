// gtest helpers that read the golden model fixtures: a tensor of ids, and the largest difference of two
// f32 tensors.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/weights/weight_store.h"

namespace plm::model::testing {

// The I32 tensor `name` of a fixture file as ids (a test failure if it is missing).
inline std::vector<int32_t> ids_of(const WeightStore& store, const std::string& name) {
  absl::StatusOr<OwnedTensor> t = store.load(name);
  EXPECT_TRUE(t.ok()) << store.source() << ": " << t.status();
  if (!t.ok()) return {};
  return std::vector<int32_t>(t->data_as<int32_t>(), t->data_as<int32_t>() + t->numel());
}

// Largest |a - b| over two host f32 tensors of equal element count (a test failure if the counts differ).
inline float max_abs_diff(Tensor a, Tensor b) {
  EXPECT_EQ(a.numel(), b.numel()) << a.describe() << " vs " << b.describe();
  float worst = 0.0f;
  for (int64_t i = 0; i < std::min(a.numel(), b.numel()); ++i) {
    worst = std::max(worst, std::abs(a.data_as<float>()[i] - b.data_as<float>()[i]));
  }
  return worst;
}

}  // namespace plm::model::testing
