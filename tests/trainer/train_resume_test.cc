// Resuming `plm train` runs in process: a run stopped after step 3 (the stop request SIGTERM makes) and resumed
// ends with the uninterrupted run's weights, bit for bit, and a metrics.jsonl holding every step once; a DP = 2
// ZeRO-2 checkpoint resumes on one rank; resume=true without a checkpoint, a changed batch.global and a changed
// freeze setting are errors that say so. (Killing the process, also mid-checkpoint: plm_train_kill_test.sh.)
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <csignal>
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "distributed/local_communicator.h"
#include "distributed/single_rank_communicator.h"
#include "model/weights/weight_store.h"
#include "tests/core/test_temp_dir.h"
#include "tests/trainer/pytorch_fixtures.h"
#include "trainer/checkpoint_export.h"
#include "trainer/checkpoint_io.h"
#include "trainer/train_run.h"

namespace plm::trainer {
namespace {

const std::vector<std::string> kShortRun = {"steps=6", "checkpoint.every=2", "checkpoint.keep=0"};

TrainConfig short_config(const std::filesystem::path& out, std::vector<std::string> extra = {}) {
  std::vector<std::string> overrides = kShortRun;
  overrides.insert(overrides.end(), extra.begin(), extra.end());
  return testing::fixture_config("full_cls_tied", out, overrides);
}

absl::StatusOr<TrainRunResult> run_single(const TrainConfig& config, int stop_after_step = 0) {
  distributed::SingleRankCommunicator world("world");
  int steps_seen = 0;
  TrainRunHooks hooks;
  if (stop_after_step > 0) hooks.stop_requested = [&] { return ++steps_seen >= stop_after_step ? SIGTERM : 0; };
  return run_training(config, world, hooks);
}

// The final checkpoint's parameters, flat, in file order.
std::vector<float> final_parameters(const std::filesystem::path& out) {
  absl::StatusOr<CheckpointScan> scan = latest_complete_checkpoint(out);
  PLM_CHECK(scan.ok() && scan->latest.has_value()) << out;
  absl::StatusOr<model::WeightStore> store =
      model::WeightStore::open((scan->latest->dir / rank_file_name(ShardKind::kModel, 0)).string());
  PLM_CHECK(store.ok()) << store.status();
  std::vector<float> all;
  for (const std::string& name : store->names()) {
    absl::StatusOr<OwnedTensor> t = store->load(name, DType::kF32);
    PLM_CHECK(t.ok()) << t.status();
    all.insert(all.end(), t->data_as<float>(), t->data_as<float>() + t->numel());
  }
  return all;
}

std::string testing_file_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::vector<nlohmann::json> metrics_lines(const std::filesystem::path& out) {
  std::ifstream in(out / "metrics.jsonl");
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

// Full fine-tuning, and LoRA with dropout (its masks are keyed by step and sample, so a resume redraws them).
class StoppedAndResumed : public ::testing::TestWithParam<std::vector<std::string>> {};

TEST_P(StoppedAndResumed, EqualsTheUninterruptedRun) {
  const std::vector<std::string> extra = GetParam();
  const std::filesystem::path whole = testing::fresh_temp_dir("whole"), split = testing::fresh_temp_dir("split");
  ASSERT_TRUE(run_single(short_config(whole, extra)).ok());

  absl::StatusOr<TrainRunResult> first = run_single(short_config(split, extra), /*stop_after_step=*/3);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->stopped);
  EXPECT_EQ(first->last_step, 3);
  EXPECT_FALSE(std::filesystem::exists(split / "final-hf"));
  absl::StatusOr<TrainRunResult> second = run_single(short_config(split, extra));
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->first_step, 4);
  EXPECT_EQ(second->last_step, 6);

  EXPECT_EQ(final_parameters(split), final_parameters(whole));  // bit for bit
  const std::vector<nlohmann::json> a = metrics_lines(whole), b = metrics_lines(split);
  ASSERT_EQ(b.size(), 6u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(b[i]["step"], static_cast<int64_t>(i + 1));
    EXPECT_EQ(b[i]["loss"], a[i]["loss"]) << "step " << i + 1;
  }
  EXPECT_TRUE(std::filesystem::exists(split / "final-hf" / "model.safetensors"));
  EXPECT_TRUE(std::filesystem::exists(split / "metrics.png"));
  // plm convert of the last checkpoint writes what the run exported (LoRA: attached from run.json and merged).
  const std::filesystem::path converted = testing::fresh_temp_dir("converted") / "hf";
  ASSERT_TRUE(convert_checkpoint_to_hf(split, converted).ok());
  EXPECT_EQ(testing_file_bytes(converted / "model.safetensors"), testing_file_bytes(split / "final-hf" / "model.safetensors"));
}

INSTANTIATE_TEST_SUITE_P(Runs, StoppedAndResumed,
                         ::testing::Values(std::vector<std::string>{},
                                           std::vector<std::string>{"lora.rank=4", "lora.dropout=0.1", "lora.merge=true",
                                                                    "lora.targets=[q_proj,v_proj,down_proj]"}),
                         [](const ::testing::TestParamInfo<std::vector<std::string>>& info) {
                           return info.param.empty() ? std::string("full") : std::string("lora_dropout");
                         });

TEST(TrainResume, DataParallelZero2CheckpointResumesOnOneRank) {
  const std::filesystem::path whole = testing::fresh_temp_dir("whole"), split = testing::fresh_temp_dir("split");
  ASSERT_TRUE(run_single(short_config(whole)).ok());
  std::vector<absl::Status> statuses(2);
  distributed::run_local_ranks(2, [&](distributed::Communicator& world) {
    int steps_seen = 0;
    TrainRunHooks hooks;
    hooks.stop_requested = [&] { return ++steps_seen >= 3 && world.rank() == 1 ? SIGUSR1 : 0; };
    const absl::StatusOr<TrainRunResult> r = run_training(short_config(split, {"layout.zero=2"}), world, hooks);
    statuses[static_cast<size_t>(world.rank())] = r.status();
    if (r.ok()) {
      EXPECT_EQ(r->last_step, 3);  // rank 1's request stops both ranks after the same step
    }
  });
  for (const absl::Status& s : statuses) ASSERT_TRUE(s.ok()) << s;
  absl::StatusOr<CheckpointScan> scan = latest_complete_checkpoint(split);
  ASSERT_TRUE(scan.ok() && scan->latest.has_value());
  EXPECT_EQ(scan->latest->marker.layout, (CheckpointLayout{.dp = 2, .zero = 2}));

  absl::StatusOr<TrainRunResult> resumed = run_single(short_config(split));
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(resumed->first_step, 4);
  const std::vector<float> want = final_parameters(whole), got = final_parameters(split);
  ASSERT_EQ(want.size(), got.size());
  double worst = 0.0, largest = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    worst = std::max(worst, std::abs(static_cast<double>(want[i]) - got[i]));
    largest = std::max(largest, std::abs(static_cast<double>(want[i])));
  }
  EXPECT_LE(worst, 1e-4 * largest);  // DP sums in another order (data_parallel_step_test.cc explains the bound)
  const std::vector<nlohmann::json> a = metrics_lines(whole), b = metrics_lines(split);
  ASSERT_EQ(b.size(), a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_NEAR(b[i]["loss"].get<double>(), a[i]["loss"].get<double>(), 1e-5 * a[i]["loss"].get<double>());
  }
}

TEST(TrainResume, ResumeTrueNeedsACheckpoint) {
  const absl::StatusOr<TrainRunResult> r = run_single(short_config(testing::fresh_temp_dir(), {"resume=true"}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(r.status().message()), ::testing::HasSubstr("resume"));
  EXPECT_THAT(std::string(r.status().message()), ::testing::HasSubstr("no complete checkpoint"));
}

TEST(TrainResume, AnIncompatibleCheckpointIsAnErrorNamingTheSetting) {
  const std::filesystem::path out = testing::fresh_temp_dir();
  ASSERT_TRUE(run_single(short_config(out), /*stop_after_step=*/2).ok());
  const absl::StatusOr<TrainRunResult> batch = run_single(short_config(out, {"batch.global=2"}));
  ASSERT_FALSE(batch.ok());
  EXPECT_THAT(std::string(batch.status().message()), ::testing::HasSubstr("batch.global"));
  const absl::StatusOr<TrainRunResult> frozen = run_single(short_config(out, {"freeze.vision=true"}));
  ASSERT_FALSE(frozen.ok());
  EXPECT_THAT(std::string(frozen.status().message()), ::testing::HasSubstr("freeze"));
}

}  // namespace
}  // namespace plm::trainer
