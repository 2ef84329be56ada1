// The planner's communication volumes against the bytes distributed::CountingCommunicator counts:
//   - one inference forward (an image prompt's prefill with its tile through the tower, then a decode step)
//     under TP = 2, PP = 2 and TP x PP = 2 x 2, on every rank: TP all-reduce and all-gather, PP send, recv,
//     broadcast and all-reduce, exactly (plan/communication_model.h forward_traffic);
//   - the data-parallel trainer's step on two ranks at ZeRO-0, -1 and -2: the gradient all-reduce or
//     reduce-scatter and the parameter all-gather, exactly, beside the step's own scalar reductions (token
//     counts, status, loss, ZeRO-2's grad norm), which the planner does not count.
// TP and PP training are not implemented yet: their per-step volumes are formulas only (not checked here).
#include <gtest/gtest.h>

#include <mutex>
#include <vector>

#include <nlohmann/json.hpp>

#include "distributed/counting_communicator.h"
#include "distributed/local_communicator.h"
#include "distributed/process_groups.h"
#include "model/plm_model.h"
#include "plan/communication_model.h"
#include "tests/plan/plan_test_model.h"
#include "trainer/data_parallel_step.h"

namespace plm::plan {
namespace {

struct Counted {
  Payload tp, pp;
};

// What rank r counted over one prefill (12 tokens: one tile's placeholders after BOS, then text) and, separately,
// over one decode step.
struct ForwardCounts {
  std::vector<Counted> prefill, decode;
};

ForwardCounts count_forward(const model::PlmConfig& config, int tp, int pp, const std::vector<int32_t>& prompt) {
  ForwardCounts counts{.prefill = std::vector<Counted>(static_cast<size_t>(tp * pp)),
                       .decode = std::vector<Counted>(static_cast<size_t>(tp * pp))};
  std::mutex mutex;
  distributed::run_local_ranks(tp * pp, [&](distributed::Communicator& world) {
    absl::StatusOr<distributed::ProcessGroups> groups =
        distributed::ProcessGroups::create(world.split(0, world.rank(), "world"), tp, pp);
    ASSERT_TRUE(groups.ok()) << groups.status();
    distributed::CountingCommunicator tp_count(*groups->tp), pp_count(*groups->pp);
    absl::StatusOr<std::unique_ptr<model::PlmModel>> model =
        model::PlmModel::load(testing::tiny_model_dir(), Device::cpu(), {&tp_count, &pp_count});
    ASSERT_TRUE(model.ok()) << model.status();
    tp_count.reset();
    pp_count.reset();
    OwnedTensor pixels;
    testing::synthetic_batch(config, 1, config.tokens_per_tile() + 2, 1, pixels);
    const OwnedTensor rows = (*model)->encode_media(pixels.view());
    std::unique_ptr<model::KvCache> cache = (*model)->make_cache(1, 32);
    const int64_t t = static_cast<int64_t>(prompt.size());
    ASSERT_TRUE((*model)->forward(prompt, {{{0, 0, t}}}, {.image = rows.view(), .video = {}}, *cache, false).ok());
    Counted prefill{.tp = tp_count.bytes(), .pp = pp_count.bytes()};
    tp_count.reset();
    pp_count.reset();
    ASSERT_TRUE((*model)->forward({791}, {{{0, t, 1}}}, {}, *cache, false).ok());
    const std::lock_guard<std::mutex> lock(mutex);
    counts.prefill[static_cast<size_t>(world.rank())] = prefill;
    counts.decode[static_cast<size_t>(world.rank())] = {.tp = tp_count.bytes(), .pp = pp_count.bytes()};
  });
  return counts;
}

class ForwardTrafficTest : public ::testing::TestWithParam<std::pair<int, int>> {};

TEST_P(ForwardTrafficTest, EveryRankCountsWhatThePlannerPredicts) {
  const auto [tp, pp] = GetParam();
  const absl::StatusOr<model::PlmConfig> config = model::load_plm_config(testing::tiny_model_dir());
  ASSERT_TRUE(config.ok()) << config.status();
  std::vector<int32_t> prompt = {128000};
  for (int i = 0; i < config->tokens_per_tile(); ++i) prompt.push_back(config->image_token_id);
  for (const int32_t id : {9906, 1917, 13, 220, 1115, 374, 264}) prompt.push_back(id);
  const ForwardCounts counts = count_forward(*config, tp, pp, prompt);
  const int64_t t = static_cast<int64_t>(prompt.size());
  for (int rank = 0; rank < tp * pp; ++rank) {
    const int stage = rank / tp;  // Megatron order: TP fastest
    const Traffic prefill = forward_traffic(*config, tp, pp, stage, t, 1, 1, DType::kF32);
    const Traffic decode = forward_traffic(*config, tp, pp, stage, 1, 1, 0, DType::kF32);
    const Counted& p = counts.prefill[static_cast<size_t>(rank)];
    const Counted& d = counts.decode[static_cast<size_t>(rank)];
    if (tp > 1) {
      EXPECT_EQ(p.tp, prefill.tp.payload) << "prefill, TP, rank " << rank;
      EXPECT_EQ(d.tp, decode.tp.payload) << "decode, TP, rank " << rank;
    }
    if (pp > 1) {
      EXPECT_EQ(p.pp, prefill.pp.payload) << "prefill, PP, rank " << rank;
      EXPECT_EQ(d.pp, decode.pp.payload) << "decode, PP, rank " << rank;
    }
  }
  const Traffic rank0 = forward_traffic(*config, tp, pp, 0, t, 1, 1, DType::kF32);
  std::printf("[volume] tp %d pp %d, %lld-token prefill with 1 tile, rank 0: TP all-reduce %lld B, PP send %lld B\n",
              tp, pp, static_cast<long long>(t),
              static_cast<long long>(rank0.tp.payload.count("all_reduce") ? rank0.tp.payload.at("all_reduce") : 0),
              static_cast<long long>(rank0.pp.payload.count("send") ? rank0.pp.payload.at("send") : 0));
}

INSTANTIATE_TEST_SUITE_P(Layouts, ForwardTrafficTest,
                         ::testing::Values(std::pair{2, 1}, std::pair{1, 2}, std::pair{2, 2}));

// The step's scalar all-reduces beside the gradients: labelled and total tokens (i64 each), the status
// agreement (i32), the loss (f32), and at ZeRO-2 the squared grad norm of the shards (f32).
int64_t step_scalar_bytes(int zero) { return 8 + 8 + 4 + 4 + (zero == 2 ? 4 : 0); }

TEST(TrainingTraffic, DataParallelStepCountsWhatThePlannerPredicts) {
  const absl::StatusOr<model::PlmConfig> config = model::load_plm_config(testing::tiny_model_dir());
  ASSERT_TRUE(config.ok()) << config.status();
  for (const int zero : {0, 1, 2}) {
    std::vector<Payload> counted(2);
    distributed::run_local_ranks(2, [&](distributed::Communicator& dp) {
      absl::StatusOr<std::unique_ptr<model::PlmModel>> m =
          model::PlmModel::load(testing::tiny_model_dir(), Device::cpu(), {}, {.for_training = true});
      ASSERT_TRUE(m.ok()) << m.status();
      distributed::CountingCommunicator count(dp);
      trainer::DataParallelStep step(**m, count, {.zero_stage = zero, .adamw = {}, .bucket_elements = 1 << 16},
                                     [](const std::string&) { return true; });
      OwnedTensor pixels;
      const model::TrainingBatch batch = testing::synthetic_batch((*m)->config(), 1, 32, 1, pixels);
      ASSERT_TRUE(step.step({batch}, 1e-3f).ok());
      counted[static_cast<size_t>(dp.rank())] = count.bytes();
    });
    const TrainingSetup setup{.layout = {.dp = 2},
                              .zero_stage = zero,
                              .micro_batch = {.tokens = 32, .tiles = 1},
                              .sequence_tokens = 32,
                              .dtype = DType::kF32};
    const Payload predicted = training_traffic(*config, setup, 0).dp.payload;
    for (size_t rank = 0; rank < 2; ++rank) {
      Payload gradients = counted[rank];
      gradients["all_reduce"] -= step_scalar_bytes(zero);
      if (gradients["all_reduce"] == 0) gradients.erase("all_reduce");
      EXPECT_EQ(gradients, predicted) << "ZeRO-" << zero << ", rank " << rank;
    }
    std::printf("[volume] dp 2 ZeRO-%d step: %s\n", zero,
                nlohmann::json(predicted).dump().c_str());
  }
}

}  // namespace
}  // namespace plm::plan
