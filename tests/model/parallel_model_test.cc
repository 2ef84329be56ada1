// TP x PP layouts of the tiny PLMs on in-process ranks (threads); the same checks run under mpirun in
// parallel_model_mpi_test.cc.
#include <gtest/gtest.h>

#include <mutex>

#include "distributed/local_communicator.h"
#include "distributed/process_groups.h"
#include "model/generator.h"
#include "model/plm_model.h"
#include "model/parallel.h"
#include "tests/model/parallel_checks.h"

namespace plm::model {
namespace {

struct Layout {
  std::string model_dir;
  std::string input;
  int tp, pp;
};

void PrintTo(const Layout& l, std::ostream* os) { *os << l.model_dir << "/" << l.input << " tp" << l.tp << " pp" << l.pp; }

class ParallelModel : public ::testing::TestWithParam<Layout> {};

TEST_P(ParallelModel, MatchesOneRankAndHf) {
  const Layout& l = GetParam();
  std::mutex mutex;
  std::vector<std::string> errors;
  double worst = 0.0;
  distributed::run_local_ranks(l.tp * l.pp, [&](distributed::Communicator& world) {
    double diff = 0.0;
    const std::string e = testing::check_parallel_model(world, l.model_dir, l.input, l.tp, l.pp, &diff);
    std::lock_guard<std::mutex> lock(mutex);
    worst = std::max(worst, diff);
    if (!e.empty()) errors.push_back(e);
  });
  EXPECT_TRUE(errors.empty()) << errors.front();
  RecordProperty("max_relative_logit_diff", std::to_string(worst));
  std::printf("[parallel] %s/%s tp=%d pp=%d: max relative logit diff vs one rank = %.3g\n", l.model_dir.c_str(),
              l.input.c_str(), l.tp, l.pp, worst);
}

std::string layout_name(const ::testing::TestParamInfo<Layout>& info) {
  return info.param.model_dir + "_" + info.param.input + "_tp" + std::to_string(info.param.tp) + "_pp" +
         std::to_string(info.param.pp);
}

INSTANTIATE_TEST_SUITE_P(Layouts, ParallelModel,
                         ::testing::Values(Layout{"cls_tied", "image", 2, 1}, Layout{"cls_tied", "image", 4, 1},
                                           Layout{"cls_tied", "video", 1, 2}, Layout{"cls_tied", "text", 2, 2},
                                           Layout{"nocls_untied_hub45", "image", 2, 1},
                                           Layout{"nocls_untied", "text", 4, 2}),
                         layout_name);

TEST(StageLayers, EvenSplitWithRemainderFirst) {
  EXPECT_EQ(stage_layers(16, 0, 4), std::make_pair(0, 4));
  EXPECT_EQ(stage_layers(16, 3, 4), std::make_pair(12, 16));
  EXPECT_EQ(stage_layers(5, 0, 2), std::make_pair(0, 3));
  EXPECT_EQ(stage_layers(5, 1, 2), std::make_pair(3, 5));
}

}  // namespace
}  // namespace plm::model

namespace plm::model {
namespace {

TEST(StageLayers, CostAwareSplitGivesTheVisionStageFewerLayers) {
  absl::StatusOr<PlmConfig> config = load_plm_config(std::string(PLM_SOURCE_DIR) + "/configs/plm-1b");
  ASSERT_TRUE(config.ok()) << config.status();
  // Text only, the head not counted (prefill): an even split.
  EXPECT_EQ(cost_aware_stage_layers(*config, 2, {}), (std::vector<int>{8, 8}));
  // Every token through the head (~4.3 layers of PLM-1B's): the last stage takes 4 layers fewer, 10 + 0 against
  // 6 + 4.3; with 4 stages 5 + 5 + 5 against 1 + 4.3.
  EXPECT_EQ(cost_aware_stage_layers(*config, 2, {.head_fraction = 1.0}), (std::vector<int>{10, 6}));
  EXPECT_EQ(cost_aware_stage_layers(*config, 4, {.head_fraction = 1.0}), (std::vector<int>{5, 5, 5, 1}));
  // Image-heavy prompts: the tower alone outweighs the decoder, so stage 0 runs no decoder layer.
  EXPECT_EQ(cost_aware_stage_layers(*config, 2, {.media_fraction = 0.9}), (std::vector<int>{0, 16}));
  EXPECT_EQ(cost_aware_stage_layers(*config, 1, {.media_fraction = 0.9, .head_fraction = 0.1}),
            (std::vector<int>{16}));
  const std::vector<int> four = cost_aware_stage_layers(*config, 4, {.media_fraction = 0.1});
  EXPECT_EQ(four.size(), 4u);
  EXPECT_LT(four[0], four[1]);
  EXPECT_EQ(four[0] + four[1] + four[2] + four[3], 16);
  EXPECT_EQ(stage_layers(std::vector<int>{0, 3, 2}, 1), std::make_pair(0, 3));
  EXPECT_EQ(stage_layers(std::vector<int>{0, 3, 2}, 2), std::make_pair(3, 5));
}

TEST(ParallelModel, ExplicitSplitsWithAnEmptyStageMatch) {
  // {0, 2}: stage 0 runs only the vision tower, projector and embedding, stage 1 every decoder layer; {2, 0}: stage 1
  // runs only the final norm and LM head (the cost-aware split's choice when the head outweighs the layers). The
  // logits must be the single rank's and the greedy tokens HF's, as for the even splits above.
  for (const std::vector<int>& split : {std::vector<int>{0, 2}, std::vector<int>{2, 0}}) {
    std::mutex mutex;
    std::vector<std::string> errors;
    double worst = 0.0;
    distributed::run_local_ranks(2, [&](distributed::Communicator& world) {
      double diff = 0.0;
      const std::string e = testing::check_parallel_model(world, "cls_tied", "image", 1, 2, &diff, split);
      std::lock_guard<std::mutex> lock(mutex);
      worst = std::max(worst, diff);
      if (!e.empty()) errors.push_back(e);
    });
    EXPECT_TRUE(errors.empty()) << errors.front();
    std::printf("[parallel] cls_tied/image pp=2, layers {%d, %d}: max relative logit diff vs one rank = %.3g\n",
                split[0], split[1], worst);
  }
  absl::StatusOr<std::unique_ptr<PlmModel>> bad = PlmModel::load(
      std::string(PLM_SOURCE_DIR) + "/tests/fixtures/models/cls_tied", Device::cpu(), ModelParallel{nullptr, nullptr, {1, 2}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("adding up to 2 decoder layers"), std::string::npos) << bad.status();
}

}  // namespace
}  // namespace plm::model

namespace plm::model {
namespace {

TEST(ParallelModel, MediaMismatchFailsOnEveryStageWithoutHanging) {
  std::mutex mutex;
  std::vector<std::string> messages;
  distributed::run_local_ranks(2, [&](distributed::Communicator& world) {
    absl::StatusOr<distributed::ProcessGroups> groups =
        distributed::ProcessGroups::create(world.split(0, world.rank(), "world"), 1, 2);
    ASSERT_TRUE(groups.ok());
    absl::StatusOr<std::unique_ptr<PlmModel>> model =
        PlmModel::load(std::string(PLM_SOURCE_DIR) + "/tests/fixtures/models/cls_tied", Device::cpu(),
                       {groups->tp.get(), groups->pp.get()});
    ASSERT_TRUE(model.ok()) << model.status();
    GenerationRequest r;
    r.prompt_ids = {128000, 128002, 9906};  // one image placeholder, no image
    absl::StatusOr<std::vector<GenerationResult>> results = generate(**model, {r}, {});
    std::lock_guard<std::mutex> lock(mutex);
    messages.push_back(results.ok() ? "ok" : std::string(results.status().message()));
  });
  ASSERT_EQ(messages.size(), 2u);
  for (const std::string& m : messages) EXPECT_NE(m.find("1 image placeholder tokens"), std::string::npos) << m;
}

}  // namespace
}  // namespace plm::model
