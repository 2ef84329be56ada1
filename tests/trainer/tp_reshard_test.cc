// Resharding a checkpoint across TP degrees on in-process ranks. Exactly: a TP=2 checkpoint (after 2 AdamW steps)
// restored at TP=1 and at TP=4 (where the tiny model's KV heads and vision tower are replicated instead of split)
// holds, gathered whole, bit for bit the parameters and the three AdamW states of the TP=2 run, and its step count.
// As runs: a TP=2 run stopped after step 3 and resumed at TP=1, and a TP=1 run resumed at TP=2, end where the
// uninterrupted one-rank run does (the cross-layout bounds of tp_train_test.cc).
#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "distributed/local_communicator.h"
#include "model/whole_parameters.h"
#include "tests/core/test_temp_dir.h"
#include "tests/model/training_samples.h"
#include "tests/trainer/pytorch_fixtures.h"
#include "tests/trainer/run_comparison.h"
#include "trainer/data_parallel_step.h"
#include "trainer/train_run.h"
#include "trainer/training_checkpoint.h"

namespace plm::trainer {
namespace {

using ::plm::testing::train_on_local_ranks;

using Whole = std::map<std::string, std::vector<float>>;  // by HF name

// The whole parameters and AdamW states of a ZeRO-0 step (each TP rank's state is its whole flat vector).
struct WholeState {
  Whole params, master, exp_avg, exp_avg_sq;
  int64_t steps = 0;
};

// `flat` (laid out like the step's trainable parameters) gathered whole over TP, on TP rank 0.
Whole gather(const model::PlmModel& model, const DataParallelStep& step, Tensor flat) {
  model::PlmWeights views = model.weights();
  views.for_each_parameter([&](const std::string& name, Tensor& t) {
    const model::FlatEntry* e = step.params().find(name);
    t = e == nullptr ? Tensor() : flat.slice(0, e->offset, e->offset + e->numel).reshape(e->shape);
  });
  Whole whole;
  for (model::WholeParameter& p : model::gather_whole_parameters(model, views)) {
    whole[p.name].assign(p.value.data_as<float>(), p.value.data_as<float>() + p.value.numel());
  }
  return whole;
}

WholeState whole_state(const model::PlmModel& model, const DataParallelStep& step) {
  return {.params = gather(model, step, step.params().flat()),
          .master = gather(model, step, step.optimizer().master()),
          .exp_avg = gather(model, step, step.optimizer().exp_avg()),
          .exp_avg_sq = gather(model, step, step.optimizer().exp_avg_sq()),
          .steps = step.optimizer().steps_taken()};
}

std::unique_ptr<model::PlmModel> load(distributed::Communicator& tp) {
  absl::StatusOr<std::unique_ptr<model::PlmModel>> m = model::PlmModel::load(
      model::testing::model_fixtures() + "cls_tied", Device::cpu(), {.tp = &tp}, {.for_training = true});
  PLM_CHECK(m.ok()) << m.status();
  return std::move(*m);
}

bool all(const std::string&) { return true; }

const DataParallelConfig kStepConfig = {.adamw = {.weight_decay = 0.1f}, .grad_clip = 0.5f};

// Trains 2 steps at TP=2 and checkpoints them; returns the state the ranks held.
WholeState save_tp2(const std::filesystem::path& out) {
  const model::testing::Sample image = model::testing::load_sample("image"), text = model::testing::load_sample("text");
  std::vector<OwnedTensor> storage;
  const std::vector<model::TrainingBatch> batches = {model::testing::pack({&image, &text}, storage)};
  WholeState saved;
  distributed::run_local_ranks(2, [&](distributed::Communicator& world) {
    const std::unique_ptr<model::PlmModel> m = load(world);
    DataParallelStep step(*m, distributed::single_rank_group(), kStepConfig, all);
    for (int k = 1; k <= 2; ++k) ASSERT_TRUE(step.step(batches, 1e-3f).ok());
    const absl::StatusOr<std::filesystem::path> dir = save_training_checkpoint(
        out, {.step = 2, .lr_step = 2}, step, world, {.layout = {.tp = 2}, .keep = 0, .run_info = {}}, nullptr);
    ASSERT_TRUE(dir.ok()) << dir.status();
    WholeState state = whole_state(*m, step);
    if (world.rank() == 0) saved = std::move(state);
  });
  return saved;
}

class Reshard : public ::testing::TestWithParam<int> {};

TEST_P(Reshard, Tp2CheckpointRestoresExactly) {
  const int tp = GetParam();
  const std::filesystem::path out = testing::fresh_temp_dir();
  const WholeState want = save_tp2(out);
  ASSERT_FALSE(want.master.empty());
  WholeState got;
  absl::Status restored;
  std::mutex mutex;
  distributed::run_local_ranks(tp, [&](distributed::Communicator& world) {
    const std::unique_ptr<model::PlmModel> m = load(world);
    DataParallelStep step(*m, distributed::single_rank_group(), kStepConfig, all);
    const absl::StatusOr<TrainState> state = restore_training_checkpoint(checkpoints_dir(out) / step_dir_name(2), step);
    WholeState whole = whole_state(*m, step);
    std::lock_guard<std::mutex> lock(mutex);
    if (!state.ok()) restored = state.status();
    if (world.rank() == 0) got = std::move(whole);
  });
  ASSERT_TRUE(restored.ok()) << restored;
  EXPECT_EQ(got.steps, 2);
  EXPECT_EQ(got.params, want.params);
  EXPECT_EQ(got.master, want.master);
  EXPECT_EQ(got.exp_avg, want.exp_avg);
  EXPECT_EQ(got.exp_avg_sq, want.exp_avg_sq);
}

INSTANTIATE_TEST_SUITE_P(ToTp, Reshard, ::testing::Values(1, 4),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return "tp" + std::to_string(info.param) + "_np" + std::to_string(info.param);
                         });

TrainConfig run_config(const std::filesystem::path& out, const std::vector<std::string>& layout) {
  std::vector<std::string> overrides = {"steps=6", "checkpoint.every=0", "export_dtype=f32"};
  overrides.insert(overrides.end(), layout.begin(), layout.end());
  return testing::fixture_config("full_cls_tied", out, overrides);
}


struct Switch {
  int from_tp, to_tp;
};

class ReshardedRun : public ::testing::TestWithParam<Switch> {};

TEST_P(ReshardedRun, EndsWhereTheOneRankRunDoes) {
  const Switch& s = GetParam();
  const std::filesystem::path one = testing::fresh_temp_dir("one"), split = testing::fresh_temp_dir("split");
  ASSERT_TRUE(train_on_local_ranks(run_config(one, {}), 1).ok());
  const absl::Status first =
      train_on_local_ranks(run_config(split, {"layout.tp=" + std::to_string(s.from_tp)}), s.from_tp, 3);
  ASSERT_TRUE(first.ok()) << first;
  const absl::Status second =
      train_on_local_ranks(run_config(split, {"layout.tp=" + std::to_string(s.to_tp), "resume=true"}), s.to_tp);
  ASSERT_TRUE(second.ok()) << second;
  const testing::RunDifference d = testing::compare_runs(one, split);
  ASSERT_TRUE(d.error.empty()) << d.error;
  EXPECT_LE(d.loss, 1e-5) << testing::describe(d);
  EXPECT_LE(d.grad_norm, 1e-4) << testing::describe(d);
  EXPECT_LE(d.weight, 1e-5) << testing::describe(d);
  EXPECT_LE(d.tensor_weight, 5e-5) << testing::describe(d);  // tp_train_test.cc explains the per-tensor bound
  std::printf("[reshard] TP=%d for 3 steps, then TP=%d, vs one rank: %s\n", s.from_tp, s.to_tp,
              testing::describe(d).c_str());
}

INSTANTIATE_TEST_SUITE_P(Switches, ReshardedRun, ::testing::Values(Switch{2, 1}, Switch{1, 2}),
                         [](const ::testing::TestParamInfo<Switch>& info) {
                           const Switch& s = info.param;
                           return "tp" + std::to_string(s.from_tp) + "_to_tp" + std::to_string(s.to_tp) + "_np2";
                         });

}  // namespace
}  // namespace plm::trainer
