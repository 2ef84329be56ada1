// What the planner says a rank holds against what model/ loads on it: the tiny model on in-process ranks under
// TP = 2, PP = 2 and 2 x 2 (the vision tower splitting over TP, the tied head copied onto the last stage), its
// parameters and its KV bytes per token (the paged cache's block size over its tokens); and the stages of
// PLM-1B/8B adding up to the whole model.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <mutex>
#include <vector>

#include "distributed/local_communicator.h"
#include "distributed/process_groups.h"
#include "model/plm_model.h"
#include "model/text/paged_kv_cache.h"
#include "plan/layout.h"
#include "plan/memory_model.h"
#include "plan/stage_parameters.h"
#include "tests/plan/plan_test_model.h"

namespace plm::plan {
namespace {

struct Loaded {
  int64_t parameters = 0;
  int64_t kv_bytes_per_token = 0;
};

// What each rank of a tp x pp job loads.
std::vector<Loaded> load_ranks(int tp, int pp) {
  std::vector<Loaded> loaded(static_cast<size_t>(tp * pp));
  std::mutex mutex;
  distributed::run_local_ranks(tp * pp, [&](distributed::Communicator& world) {
    absl::StatusOr<distributed::ProcessGroups> groups =
        distributed::ProcessGroups::create(world.split(0, world.rank(), "world"), tp, pp);
    ASSERT_TRUE(groups.ok()) << groups.status();
    absl::StatusOr<std::unique_ptr<model::PlmModel>> model =
        model::PlmModel::load(testing::tiny_model_dir(), Device::cpu(), {groups->tp.get(), groups->pp.get()});
    ASSERT_TRUE(model.ok()) << model.status();
    int64_t n = 0;
    (*model)->for_each_parameter([&](const std::string&, Tensor& t) { n += t.numel(); });
    constexpr int64_t kBlockTokens = 16;
    const size_t block = model::PagedKvCache::block_bytes((*model)->kv_layout(), kBlockTokens, (*model)->dtype());
    const std::lock_guard<std::mutex> lock(mutex);
    loaded[static_cast<size_t>(world.rank())] = {.parameters = n,
                                                 .kv_bytes_per_token = static_cast<int64_t>(block) / kBlockTokens};
  });
  return loaded;
}

TEST(StageParameters, TinyModelRanksHoldWhatTheLoaderLoadsAndCaches) {
  const absl::StatusOr<model::PlmConfig> config = model::load_plm_config(testing::tiny_model_dir());
  ASSERT_TRUE(config.ok()) << config.status();
  for (const auto& [tp, pp] : {std::pair{1, 1}, std::pair{2, 1}, std::pair{1, 2}, std::pair{2, 2}}) {
    const std::vector<Loaded> loaded = load_ranks(tp, pp);
    const ServingSetup serving{.layout = {.tp = tp, .pp = pp}, .dtype = DType::kF32};
    for (int stage = 0; stage < pp; ++stage) {
      // TP rank 0 of the stage (Megatron order): it also holds the vision tower's row-parallel biases.
      const Loaded& rank0 = loaded[static_cast<size_t>(stage * tp)];
      EXPECT_EQ(stage_parameters(*config, tp, pp, stage).total(), rank0.parameters)
          << "tp " << tp << " pp " << pp << " stage " << stage;
      EXPECT_EQ(serving_memory(*config, serving, stage).kv_bytes_per_token, rank0.kv_bytes_per_token)
          << "tp " << tp << " pp " << pp << " stage " << stage;
    }
  }
}

TEST(StageParameters, StagesAddUpToTheModel) {
  for (const char* name : {"plm-1b", "plm-8b"}) {
    const absl::StatusOr<model::PlmConfig> config =
        model::load_plm_config(std::string(PLM_SOURCE_DIR) + "/configs/" + name);
    ASSERT_TRUE(config.ok()) << config.status();
    const int64_t whole = model::count_parameters(*config).total;
    EXPECT_EQ(stage_parameters(*config, 1, 1, 0).total(), whole) << name;
    // A tied head is a second copy on the last stage once the embedding is on another one.
    const int64_t tied_copy = config->tie_word_embeddings ? int64_t{config->text.vocab_size} * config->text.hidden_size : 0;
    // The even split, and the training split (fewer layers on the last stage, which runs the LM head).
    const std::vector<int> training = training_stage_layers(*config, 4);
    EXPECT_LT(training.back(), config->text.num_layers / 4) << name;
    for (const std::vector<int>& split : {std::vector<int>{}, training}) {
      int64_t stages = 0, layers = 0;
      for (int s = 0; s < 4; ++s) {
        const StageParameters p = stage_parameters(*config, 1, 4, s, split);
        stages += p.total();
        layers += p.num_layers;
        if (!split.empty()) {
          EXPECT_EQ(p.num_layers, split[s]) << name << " stage " << s;
        }
      }
      EXPECT_EQ(stages, whole + tied_copy) << name;
      EXPECT_EQ(layers, config->text.num_layers) << name;
    }
  }
  const absl::StatusOr<model::PlmConfig> one_b = model::load_plm_config(std::string(PLM_SOURCE_DIR) + "/configs/plm-1b");
  ASSERT_TRUE(one_b.ok());
  EXPECT_TRUE(training_stage_layers(*one_b, 1).empty());  // one stage: no split
}

TEST(Layout, RejectsWhatTheModelOrTheNodeCannotSplit) {
  const absl::StatusOr<model::PlmConfig> config =
      model::load_plm_config(std::string(PLM_SOURCE_DIR) + "/configs/plm-8b");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(all_layouts(16).size(), 15u);  // tp x pp x dp = 16: (5 + 4 + 3 + 2 + 1) divisor pairs
  EXPECT_TRUE(check_layout(*config, {.tp = 8, .pp = 2, .dp = 1}, 8).ok());
  const absl::Status straddles = check_layout(*config, {.tp = 16, .pp = 1, .dp = 1}, 8);
  EXPECT_THAT(std::string(straddles.message()), ::testing::HasSubstr("tp (16) does not divide the 8 devices"));
  const absl::Status heads = check_layout(*config, {.tp = 3, .pp = 1, .dp = 1}, 3);
  EXPECT_THAT(std::string(heads.message()), ::testing::HasSubstr("num_attention_heads (32) is not divisible by tp (3)"));
  const absl::Status layers = check_layout(*config, {.tp = 1, .pp = 64, .dp = 1}, 8);
  EXPECT_THAT(std::string(layers.message()), ::testing::HasSubstr("exceeds the 32 decoder layers"));
  const AxisLinks links = axis_links({.tp = 8, .pp = 2, .dp = 1}, 8);
  EXPECT_EQ(links.tp, Link::kIntraNode);
  EXPECT_EQ(links.pp, Link::kInterNode);
  EXPECT_EQ(links.dp, Link::kNone);
}

}  // namespace
}  // namespace plm::plan
