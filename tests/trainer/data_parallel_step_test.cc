// The data-parallel step on in-process ranks: DP = 2 with ZeRO-0/1/2 and DP = 4 with ZeRO-2, each with
// gradient accumulation (several micro-batches per rank), give the single-rank losses, grad norms and
// final weights; frozen parameters get no optimizer state; shard ranges cover the vector exactly.
#include <gtest/gtest.h>

#include <cmath>
#include <mutex>
#include <string>
#include <vector>

#include "distributed/local_communicator.h"
#include "distributed/single_rank_communicator.h"
#include "tests/model/training_samples.h"
#include "trainer/data_parallel_step.h"

namespace plm::trainer {
namespace {

using model::testing::load_sample;
using model::testing::pack;
using model::testing::Sample;

constexpr int kSteps = 2;

struct TrainingRun {
  std::vector<StepStats> stats;
  std::vector<float> params;  // final trainable parameters, flat
};

bool all(const std::string&) { return true; }

// The step's 4 samples (the same every step): rank r of the DP group takes every size-th sample, in micro-batches
// of `micro` samples.
TrainingRun train(distributed::Communicator& dp, int zero, int micro, const std::function<bool(const std::string&)>& trainable) {
  absl::StatusOr<std::unique_ptr<model::PlmModel>> m = model::PlmModel::load(
      model::testing::model_fixtures() + "cls_tied", Device::cpu(), {}, {.for_training = true});
  PLM_CHECK(m.ok()) << m.status();
  const Sample image = load_sample("image"), video = load_sample("video"), text = load_sample("text");
  const std::vector<const Sample*> step_samples = {&image, &text, &video, &text};
  std::vector<const Sample*> mine;
  for (size_t i = static_cast<size_t>(dp.rank()); i < step_samples.size(); i += static_cast<size_t>(dp.size())) {
    mine.push_back(step_samples[i]);
  }
  std::vector<OwnedTensor> storage;
  std::vector<model::TrainingBatch> batches;
  for (size_t i = 0; i < mine.size(); i += static_cast<size_t>(micro)) {
    const std::vector<const Sample*> group(mine.begin() + static_cast<std::ptrdiff_t>(i),
                                           mine.begin() + static_cast<std::ptrdiff_t>(std::min(mine.size(), i + micro)));
    batches.push_back(pack(group, storage));
  }
  // Small buckets: the reduction runs in ~64 pieces, most of them while the last backward is still running.
  DataParallelStep step(**m, dp,
                        {.zero_stage = zero, .adamw = {.weight_decay = 0.1f}, .grad_clip = 0.5f, .bucket_elements = 1 << 16},
                        trainable);
  TrainingRun run;
  for (int k = 1; k <= kSteps; ++k) {
    absl::StatusOr<StepStats> s = step.step(batches, 1e-3f * static_cast<float>(k));
    PLM_CHECK(s.ok()) << s.status();
    run.stats.push_back(*s);
  }
  const OwnedTensor params = to_device(step.params().flat(), Device::cpu());
  run.params.assign(params.data_as<float>(), params.data_as<float>() + params.numel());
  return run;
}

TrainingRun single_rank(int micro) {
  distributed::SingleRankCommunicator dp("dp");
  return train(dp, 0, micro, all);
}

void expect_same(const TrainingRun& want, const TrainingRun& got, const std::string& label) {
  ASSERT_EQ(want.stats.size(), got.stats.size());
  for (size_t k = 0; k < want.stats.size(); ++k) {
    EXPECT_NEAR(got.stats[k].loss, want.stats[k].loss, 1e-5 * want.stats[k].loss) << label << " step " << k + 1;
    EXPECT_NEAR(got.stats[k].grad_norm, want.stats[k].grad_norm, 1e-4 * want.stats[k].grad_norm) << label;
    EXPECT_EQ(got.stats[k].labelled_tokens, want.stats[k].labelled_tokens) << label;
  }
  ASSERT_EQ(want.params.size(), got.params.size());
  double worst = 0.0, largest = 0.0;
  for (size_t i = 0; i < want.params.size(); ++i) {
    worst = std::max(worst, std::abs(static_cast<double>(want.params[i]) - got.params[i]));
    largest = std::max(largest, std::abs(static_cast<double>(want.params[i])));
  }
  // AdamW divides by sqrt(v): parameters with near-zero gradients turn summation-order noise into
  // updates of up to ~lr, so weights agree to ~3e-5 of the largest, not to the loss' 1e-5.
  EXPECT_LE(worst, 1e-4 * largest) << label;
}

TEST(ShardRange, CoversTheVectorInOrder) {
  for (const int size : {1, 2, 3, 4, 7}) {
    int64_t next = 0;
    for (int r = 0; r < size; ++r) {
      const Range range = shard_range(10, r, size);
      EXPECT_EQ(range.begin, next);
      EXPECT_GE(range.size(), 10 / size);
      next = range.end;
    }
    EXPECT_EQ(next, 10);
  }
}

TEST(DataParallelStep, AccumulationMatchesOneMicroBatch) {
  const TrainingRun one = single_rank(4), four = single_rank(1);
  expect_same(one, four, "4 micro-batches of 1");
  EXPECT_LT(one.stats.back().loss, one.stats.front().loss);
  EXPECT_LT(one.stats.front().clip_coef, 1.0);  // clipping is active
}

class DataParallelLayouts : public ::testing::TestWithParam<std::pair<int, int>> {};

TEST_P(DataParallelLayouts, MatchSingleRank) {
  // Plain variables, not a structured binding: clang 14 cannot capture a binding in the lambda below.
  const int ranks = GetParam().first, zero = GetParam().second;
  const TrainingRun want = single_rank(4);
  std::vector<TrainingRun> runs(static_cast<size_t>(ranks));
  distributed::run_local_ranks(ranks, [&](distributed::Communicator& dp) {
    runs[static_cast<size_t>(dp.rank())] = train(dp, zero, 1, all);
  });
  for (int r = 0; r < ranks; ++r) expect_same(want, runs[static_cast<size_t>(r)], "rank " + std::to_string(r));
}

INSTANTIATE_TEST_SUITE_P(Layouts, DataParallelLayouts,
                         ::testing::Values(std::pair{2, 0}, std::pair{2, 1}, std::pair{2, 2}, std::pair{4, 2}),
                         [](const ::testing::TestParamInfo<std::pair<int, int>>& info) {
                           return "dp" + std::to_string(info.param.first) + "_zero" +
                                  std::to_string(info.param.second) + "_np" + std::to_string(info.param.first);
                         });

TEST(DataParallelStep, FrozenVisionHasNoStateAndStaysPut) {
  distributed::SingleRankCommunicator dp("dp");
  const auto not_vision = [](const std::string& name) { return name.rfind("model.vision_tower.", 0) != 0; };
  const TrainingRun frozen = train(dp, 0, 4, not_vision);
  const TrainingRun full = single_rank(4);
  EXPECT_LT(frozen.params.size(), full.params.size());
  EXPECT_NE(frozen.stats.front().grad_norm, full.stats.front().grad_norm);
  EXPECT_DOUBLE_EQ(frozen.stats.front().loss, full.stats.front().loss);  // same weights before the first update
}

}  // namespace
}  // namespace plm::trainer
