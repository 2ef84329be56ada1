// Sample order: step k uses global samples (k-1)G .. kG-1 modulo N without shuffle, a fresh permutation
// per epoch with it, equal to an independent Python implementation (tools/reference/sample_order_reference.py).
#include "data/sample_order.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

namespace plm::data {
namespace {

SampleOrder make(int64_t n, int64_t g, bool shuffle, uint64_t seed = 0) {
  absl::StatusOr<SampleOrder> order = SampleOrder::create({.num_samples = n, .global_batch = g, .shuffle = shuffle, .seed = seed});
  EXPECT_TRUE(order.ok()) << order.status();
  return *std::move(order);
}

TEST(SampleOrder, WithoutShuffleStepsWalkTheFileAndWrap) {
  SampleOrder order = make(5, 3, false);
  EXPECT_EQ(order.step_samples(1), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(order.step_samples(2), (std::vector<int64_t>{3, 4, 0}));  // straddles epochs 0 and 1
  EXPECT_EQ(order.step_samples(3), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(order.step_samples(100), (std::vector<int64_t>{2, 3, 4}));  // (99 * 3) % 5 = 2
  EXPECT_EQ(order.epoch_of_step(2), 0);
  EXPECT_EQ(order.epoch_of_step(3), 1);
}

TEST(SampleOrder, PermutationsMatchThePythonReference) {
  // python3 tools/reference/sample_order_reference.py
  EXPECT_EQ(epoch_permutation(10, 1234, 0), (std::vector<int64_t>{4, 5, 0, 8, 3, 6, 7, 9, 1, 2}));
  EXPECT_EQ(epoch_permutation(10, 1234, 1), (std::vector<int64_t>{1, 9, 0, 2, 6, 3, 8, 4, 5, 7}));
  EXPECT_EQ(epoch_permutation(10, 0, 0), (std::vector<int64_t>{1, 7, 6, 2, 0, 9, 8, 4, 5, 3}));
  EXPECT_EQ(epoch_permutation(7, ~uint64_t{0}, 3), (std::vector<int64_t>{5, 1, 3, 4, 2, 0, 6}));
  EXPECT_EQ(epoch_permutation(1, 9, 4), (std::vector<int64_t>{0}));
}

TEST(SampleOrder, ShuffledStepsFollowTheEpochPermutations) {
  constexpr int64_t kN = 13, kG = 4;
  SampleOrder order = make(kN, kG, true, 77);
  std::vector<int64_t> seen;
  for (int64_t step = 1; step <= 13; ++step) {  // 52 samples: epochs 0..3 exactly
    const std::vector<int64_t> samples = order.step_samples(step);
    seen.insert(seen.end(), samples.begin(), samples.end());
  }
  for (int64_t epoch = 0; epoch < 4; ++epoch) {
    const std::vector<int64_t> expected = epoch_permutation(kN, 77, epoch);
    EXPECT_EQ(std::vector<int64_t>(seen.begin() + epoch * kN, seen.begin() + (epoch + 1) * kN), expected) << epoch;
    std::vector<int64_t> sorted = expected;
    std::sort(sorted.begin(), sorted.end());
    std::vector<int64_t> identity(kN);
    std::iota(identity.begin(), identity.end(), 0);
    EXPECT_EQ(sorted, identity);  // every sample once per epoch
  }
  EXPECT_NE(epoch_permutation(kN, 77, 0), epoch_permutation(kN, 77, 1));
  EXPECT_NE(epoch_permutation(kN, 77, 0), epoch_permutation(kN, 78, 0));
  // A fresh order (a resumed run) gives the same step without replaying the earlier ones.
  SampleOrder resumed = make(kN, kG, true, 77);
  EXPECT_EQ(resumed.step_samples(7), std::vector<int64_t>(seen.begin() + 24, seen.begin() + 28));
}

TEST(SampleOrder, RejectsEmptyDataAndNonPositiveBatch) {
  EXPECT_NE(SampleOrder::create({.num_samples = 0, .global_batch = 4}).status().message().find("no samples"),
            std::string::npos);
  EXPECT_NE(SampleOrder::create({.num_samples = 4, .global_batch = 0}).status().message().find("batch.global must be positive"),
            std::string::npos);
}

}  // namespace
}  // namespace plm::data
