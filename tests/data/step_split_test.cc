// The DP x micro-batch split: every sample of the step exactly once, work balanced by cost (tokens + tiles x
// tile cost), deterministic, micro-batches in step order.
#include "data/step_split.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>

namespace plm::data {
namespace {

std::vector<int> flatten(const StepSplit& split) {
  std::vector<int> all;
  for (const auto& rank : split.micro_batches) {
    for (const auto& micro : rank) all.insert(all.end(), micro.begin(), micro.end());
  }
  std::sort(all.begin(), all.end());
  return all;
}

TEST(StepSplit, CostCountsTilesInTokenUnits) {
  EXPECT_DOUBLE_EQ(sample_cost({.num_tokens = 300, .num_vision_tiles = 5}, 40.0), 500.0);
  EXPECT_DOUBLE_EQ(sample_cost({.num_tokens = 300, .num_vision_tiles = 0}, 40.0), 300.0);
}

TEST(StepSplit, OneHeavySampleGetsARankToItself) {
  // One 36-tile image sample and seven short text samples on 2 ranks x 2 micro-batches.
  std::vector<double> costs(8, 100.0);
  costs[3] = sample_cost({.num_tokens = 9500, .num_vision_tiles = 36}, 50.0);
  const StepSplit split = split_step(costs, 2, 2);
  ASSERT_EQ(split.micro_batches.size(), 2u);
  EXPECT_EQ(split.micro_batches[0], (std::vector<std::vector<int>>{{3}, {}}));
  EXPECT_EQ(split.micro_batches[1], (std::vector<std::vector<int>>{{0, 2, 5, 7}, {1, 4, 6}}));
  EXPECT_EQ(split.rank_cost, (std::vector<double>{costs[3], 700.0}));
  std::vector<int> all(8);
  std::iota(all.begin(), all.end(), 0);
  EXPECT_EQ(flatten(split), all);
}

TEST(StepSplit, RandomStepsKeepEverySampleAndBalance) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 50; ++trial) {
    const int dp = 1 + static_cast<int>(rng() % 4), micro = 1 + static_cast<int>(rng() % 4);
    const int g = dp * micro * (1 + static_cast<int>(rng() % 4));
    std::vector<double> costs(g);
    for (double& c : costs) {
      c = sample_cost({.num_tokens = 50 + static_cast<int64_t>(rng() % 2000), .num_vision_tiles = static_cast<int64_t>(rng() % 3 == 0 ? rng() % 37 : 0)}, 64.0);
    }
    const StepSplit split = split_step(costs, dp, micro);
    std::vector<int> all(g);
    std::iota(all.begin(), all.end(), 0);
    ASSERT_EQ(flatten(split), all) << trial;
    const double total = std::accumulate(costs.begin(), costs.end(), 0.0);
    const double largest = *std::max_element(costs.begin(), costs.end());
    const double busiest = *std::max_element(split.rank_cost.begin(), split.rank_cost.end());
    EXPECT_LE(busiest, total / dp + largest + 1e-9) << trial;  // greedy list-scheduling bound
    EXPECT_DOUBLE_EQ(std::accumulate(split.rank_cost.begin(), split.rank_cost.end(), 0.0), total);
    for (const auto& rank : split.micro_batches) {
      ASSERT_EQ(rank.size(), static_cast<size_t>(micro));
      for (const auto& batch : rank) EXPECT_TRUE(std::is_sorted(batch.begin(), batch.end()));
    }
    const StepSplit again = split_step(costs, dp, micro);
    EXPECT_EQ(again.micro_batches, split.micro_batches);  // deterministic
  }
}

TEST(StepSplit, OneRankOneMicroBatchIsTheStepInOrder) {
  const StepSplit split = split_step({5, 1, 9, 2}, 1, 1);
  EXPECT_EQ(split.micro_batches, (std::vector<std::vector<std::vector<int>>>{{{0, 1, 2, 3}}}));
}

}  // namespace
}  // namespace plm::data
