// The planner's per-device training memory against what the data-parallel trainer allocates on the tiny model
// (trainer/data_parallel_step.h): weights, gradients and ZeRO optimizer shards byte for byte (one rank; two
// in-process ranks at ZeRO-1 and -2), and the activations within 15 % of the step's measured activation memory
// (the arena's peak plus the vocab chunk of logits the loss allocates beside it) for every recomputation policy,
// with and without image tiles. The process's peak RSS is compared by bench/plan_memory_check.sh (ctest
// plan_memory_rss_tiny).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <mutex>

#include "core/kernels/kernel_types.h"
#include "distributed/local_communicator.h"
#include "distributed/single_rank_communicator.h"
#include "plan/memory_model.h"
#include "tests/plan/plan_test_model.h"
#include "trainer/data_parallel_step.h"

namespace plm::plan {
namespace {

struct Measured {
  int64_t weights = 0, gradients = 0, optimizer = 0;
  int64_t arena = 0;        // the training pass's activation arena at its peak
  int64_t loss_logits = 0;  // the loss's vocab chunk of logits beside it
};

// One optimizer step of one micro-batch of `sequences` x `tokens` with `tiles` tiles per sequence.
Measured measure_step(distributed::Communicator& dp, int zero, model::Recompute recompute, int sequences,
                      int64_t tokens, int tiles) {
  absl::StatusOr<std::unique_ptr<model::PlmModel>> m =
      model::PlmModel::load(testing::tiny_model_dir(), Device::cpu(), {}, {.for_training = true});
  PLM_CHECK(m.ok()) << m.status();
  trainer::DataParallelStep step(**m, dp, {.zero_stage = zero, .adamw = {}, .recompute = recompute},
                                 [](const std::string&) { return true; });
  OwnedTensor pixels;
  const model::TrainingBatch batch = testing::synthetic_batch((*m)->config(), sequences, tokens, tiles, pixels);
  const absl::StatusOr<trainer::StepStats> stats = step.step({batch}, 1e-3f);
  PLM_CHECK(stats.ok()) << stats.status();
  const int64_t t = static_cast<int64_t>(batch.ids.size());
  const int64_t chunk = std::min<int64_t>((*m)->config().text.vocab_size, CrossEntropyOptions{}.vocab_chunk);
  return {.weights = static_cast<int64_t>(step.params().flat().nbytes()),
          .gradients = static_cast<int64_t>(step.grads().flat().nbytes()),
          .optimizer = static_cast<int64_t>(step.optimizer().master().nbytes() + step.optimizer().exp_avg().nbytes() +
                                            step.optimizer().exp_avg_sq().nbytes()),
          .arena = static_cast<int64_t>(stats->peak_arena_bytes),
          .loss_logits = t * chunk * 4};
}

TrainingSetup cpu_setup(const Layout& layout, int zero, model::Recompute recompute, int sequences, int64_t tokens,
                        int tiles) {
  return {.layout = layout,
          .zero_stage = zero,
          .recompute = recompute,
          .micro_batch = {.tokens = sequences * tokens, .tiles = int64_t{sequences} * tiles},
          .sequence_tokens = tokens,
          .dtype = DType::kF32};
}

class TrainingMemoryTest : public ::testing::TestWithParam<std::tuple<model::Recompute, int>> {};

TEST_P(TrainingMemoryTest, OneRankMatchesTheTrainer) {
  const auto [recompute, tiles] = GetParam();
  const absl::StatusOr<model::PlmConfig> config = model::load_plm_config(testing::tiny_model_dir());
  ASSERT_TRUE(config.ok()) << config.status();
  const Measured measured = measure_step(distributed::single_rank_group(), 0, recompute, 2, 256, tiles);
  const TrainingMemory predicted = peak_training_memory(*config, cpu_setup({}, 0, recompute, 2, 256, tiles));
  EXPECT_EQ(predicted.weights, measured.weights);
  EXPECT_EQ(predicted.gradients, measured.gradients);
  EXPECT_EQ(predicted.optimizer, measured.optimizer);
  EXPECT_EQ(predicted.activation_parts.loss_logits, measured.loss_logits);
  const int64_t arena = predicted.activation_parts.arena(predicted.in_flight);
  const double arena_ratio = static_cast<double>(arena) / static_cast<double>(measured.arena);
  const double total_ratio =
      static_cast<double>(predicted.activations) / static_cast<double>(measured.arena + measured.loss_logits);
  std::printf("[memory] recompute %s, %d tile(s)/sequence: arena predicted %lld B, measured %lld B (x%.4f); "
              "with the logits chunk x%.4f; total predicted %lld B\n",
              std::string(model::recompute_text(recompute)).c_str(), tiles, static_cast<long long>(arena),
              static_cast<long long>(measured.arena), arena_ratio, total_ratio,
              static_cast<long long>(predicted.total()));
  EXPECT_NEAR(arena_ratio, 1.0, 0.15);
  EXPECT_NEAR(total_ratio, 1.0, 0.15);
}

INSTANTIATE_TEST_SUITE_P(Policies, TrainingMemoryTest,
                         ::testing::Combine(::testing::Values(model::Recompute::kNone, model::Recompute::kSelective,
                                                              model::Recompute::kFull),
                                            ::testing::Values(0, 2)));

TEST(TrainingMemory, ZeroShardsMatchTheTrainerOnTwoRanks) {
  const absl::StatusOr<model::PlmConfig> config = model::load_plm_config(testing::tiny_model_dir());
  ASSERT_TRUE(config.ok()) << config.status();
  for (const int zero : {1, 2}) {
    std::mutex mutex;
    Measured rank0;
    distributed::run_local_ranks(2, [&](distributed::Communicator& dp) {
      const Measured m = measure_step(dp, zero, model::Recompute::kNone, 1, 64, 0);
      if (dp.rank() == 0) {
        const std::lock_guard<std::mutex> lock(mutex);
        rank0 = m;
      }
    });
    const TrainingMemory predicted =
        peak_training_memory(*config, cpu_setup({.dp = 2}, zero, model::Recompute::kNone, 1, 64, 0));
    EXPECT_EQ(predicted.optimizer, rank0.optimizer) << "ZeRO-" << zero;
    EXPECT_EQ(predicted.optimizer_shard, (model::count_parameters(*config).total + 1) / 2);
    EXPECT_EQ(predicted.gradients, rank0.gradients) << "ZeRO-" << zero << " keeps the whole gradient buffer";
  }
}

}  // namespace
}  // namespace plm::plan
