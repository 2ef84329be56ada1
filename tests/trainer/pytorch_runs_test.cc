// plm's training against PyTorch (tests/fixtures/training, made by tools/reference/make_training_fixtures.py):
// the summed gradient of step 1 for every parameter, and whole `plm train` runs: per-step loss, grad norm and
// learning rate, and the final weights. Tolerances (issue 18): losses 1e-4 relative; weights and gradients per
// tensor relative to the tensor's largest |value| (the fixture README explains why).
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "data/processor_config.h"
#include "data/sft_dataset.h"
#include "data/tokenizer_loader.h"
#include "distributed/single_rank_communicator.h"
#include "model/flat_parameters.h"
#include "model/training_pass.h"
#include "tests/core/test_temp_dir.h"
#include "tests/trainer/pytorch_fixtures.h"
#include "trainer/checkpoint_io.h"
#include "trainer/micro_batch.h"
#include "trainer/train_config.h"
#include "trainer/train_run.h"

namespace plm::trainer {
namespace {

using testing::compare_with_fixture;
using testing::fixture_config;
using testing::read_run_metrics;
using testing::TensorDifference;
using testing::training_run_dir;

std::string worst_of(const std::vector<TensorDifference>& d, size_t n = 4) {
  std::string s;
  for (size_t i = 0; i < std::min(n, d.size()); ++i) s += d[i].name + " " + std::to_string(d[i].relative) + "\n";
  return s;
}

bool trainable(const TrainConfig& c, const std::string& name) {
  if (name.starts_with("model.vision_tower.")) return !c.freeze.vision;
  if (name.starts_with("model.multi_modal_projector.")) return !c.freeze.projector;
  return !c.freeze.llm;
}

class PyTorchStep1 : public ::testing::TestWithParam<std::string> {};

TEST_P(PyTorchStep1, EveryParameterGradientMatches) {
  const std::string run = GetParam();
  const TrainConfig config = fixture_config(run, testing::fresh_temp_dir());
  absl::StatusOr<std::unique_ptr<model::PlmModel>> m =
      model::PlmModel::load(config.model.string(), Device::cpu(), {}, {.for_training = true});
  ASSERT_TRUE(m.ok()) << m.status();
  absl::StatusOr<data::Tokenizer> tokenizer = data::load_tokenizer(config.model);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  absl::StatusOr<data::ProcessorConfig> processor = data::load_processor_config(config.model);
  ASSERT_TRUE(processor.ok()) << processor.status();
  data::SftDataConfig data_config;
  data_config.media.video_sampling = {.num_frames = config.data.num_frames};
  absl::StatusOr<std::unique_ptr<data::SftDataset>> dataset =
      data::open_sft_dataset(config.data.train, *tokenizer, *processor, data_config);
  ASSERT_TRUE(dataset.ok()) << dataset.status();

  const nlohmann::json step1 = read_run_metrics(run)["steps"][0];
  std::vector<data::SftSample> samples;
  int64_t labelled = 0;
  for (const int64_t index : step1["samples"].get<std::vector<int64_t>>()) {
    absl::StatusOr<data::SftSample> s = (*dataset)->sample(index);
    ASSERT_TRUE(s.ok()) << s.status();
    labelled += s->num_labelled();
    samples.push_back(std::move(*s));
  }
  ASSERT_EQ(labelled, step1["tokens"].get<int64_t>());
  model::FlatParameters grads((*m)->weights(), DType::kF32, Device::cpu(),
                              [&](const std::string& name) { return trainable(config, name); });
  double loss_sum = 0.0;
  for (const data::SftSample& s : samples) {
    const MicroBatch mb = pack_micro_batch({&s}, Device::cpu());
    absl::StatusOr<model::MicroBatchLoss> r =
        model::train_forward_backward(**m, grads.views(), mb.batch, 1.0f / static_cast<float>(labelled));
    ASSERT_TRUE(r.ok()) << r.status();
    loss_sum += r->loss_sum;
  }
  EXPECT_NEAR(loss_sum / static_cast<double>(labelled), step1["loss"].get<double>(), 3e-6 * step1["loss"].get<double>());

  const std::vector<TensorDifference> d =
      compare_with_fixture(training_run_dir(run) / "grads_step1.safetensors", [&](const std::string& name) {
        const model::FlatEntry* e = grads.find(name);
        return e == nullptr ? Tensor() : grads.flat().slice(0, e->offset, e->offset + e->numel);
      });
  ASSERT_FALSE(d.empty());
  EXPECT_LT(d.front().relative, 3e-5) << worst_of(d);
  RecordProperty("worst_gradient", worst_of(d, 1));
  std::printf("%s step-1 gradients, worst:\n%s", run.c_str(), worst_of(d).c_str());
}

INSTANTIATE_TEST_SUITE_P(Runs, PyTorchStep1, ::testing::Values("full_cls_tied", "full_nocls_untied"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

struct RunCase {
  std::string run;
  double weight_tolerance;  // per tensor, relative to its largest |value|: measured worst x ~2 (see the note)
};

// Measured worst final-weight differences: full_cls_tied 1.0e-5, freeze_vision 1.4e-5 (embedding rows),
// full_nocls_untied 1.7e-4 and freeze_llm 6.0e-4 (vision MLP / patch embedding). That is fp32 noise, not a bug:
// PyTorch's own fp32 runs differ from float64 reruns by 8.3e-6, 1.1e-5, 1.9e-4 and 4.3e-4 in the same tensors
// (tests/fixtures/training/README.md), and plm's runs are as close to the float64 ones as PyTorch's (1.8e-4 and
// 4.6e-4 for the last two; tools/reference/compare_training_runs.py). AdamW moves elements whose gradient is
// near zero by ~lr whatever its size, so rounding decides their direction; the losses stay within 1e-4.
class PyTorchRun : public ::testing::TestWithParam<RunCase> {};

TEST_P(PyTorchRun, LossesAndFinalWeightsMatch) {
  const std::string run = GetParam().run;
  const std::filesystem::path out = testing::fresh_temp_dir();
  const TrainConfig config = fixture_config(run, out);
  distributed::SingleRankCommunicator world("world");
  absl::StatusOr<TrainRunResult> result = run_training(config, world);
  ASSERT_TRUE(result.ok()) << result.status();

  const nlohmann::json want = read_run_metrics(run)["steps"];
  std::ifstream in(out / "metrics.jsonl");
  std::string line;
  size_t k = 0;
  for (; std::getline(in, line); ++k) {
    ASSERT_LT(k, want.size());
    const nlohmann::json got = nlohmann::json::parse(line);
    const nlohmann::json& w = want[k];
    EXPECT_EQ(got["step"], w["step"]);
    EXPECT_NEAR(got["loss"].get<double>(), w["loss"].get<double>(), 1e-4 * w["loss"].get<double>()) << "step " << k + 1;
    EXPECT_NEAR(got["grad_norm"].get<double>(), w["grad_norm"].get<double>(), 1e-3 * w["grad_norm"].get<double>() + 1e-6)
        << "step " << k + 1;
    EXPECT_DOUBLE_EQ(got["lr"].get<double>(), w["lr"].get<double>()) << "step " << k + 1;
  }
  EXPECT_EQ(k, want.size());

  absl::StatusOr<CheckpointScan> scan = latest_complete_checkpoint(out);
  ASSERT_TRUE(scan.ok() && scan->latest.has_value());
  absl::StatusOr<model::WeightStore> final_weights =
      model::WeightStore::open((scan->latest->dir / rank_file_name(ShardKind::kModel, 0)).string());
  ASSERT_TRUE(final_weights.ok()) << final_weights.status();
  std::map<std::string, OwnedTensor> loaded;
  const std::vector<TensorDifference> d =
      compare_with_fixture(training_run_dir(run) / "final.safetensors", [&](const std::string& name) {
        absl::StatusOr<OwnedTensor> t = final_weights->load(name, DType::kF32);
        if (!t.ok()) return Tensor();
        return (loaded[name] = std::move(*t)).view();
      });
  ASSERT_FALSE(d.empty());
  EXPECT_LT(d.front().relative, GetParam().weight_tolerance) << worst_of(d);
  std::printf("%s final weights, worst:\n%s", run.c_str(), worst_of(d).c_str());
  EXPECT_TRUE(std::filesystem::exists(out / "final-hf" / "model.safetensors"));
}

INSTANTIATE_TEST_SUITE_P(Runs, PyTorchRun,
                         ::testing::Values(RunCase{"full_cls_tied", 2e-5}, RunCase{"freeze_vision_cls_tied", 3e-5},
                                           RunCase{"full_nocls_untied", 4e-4}, RunCase{"freeze_llm_all_but_media_cls_tied", 1.2e-3}),
                         [](const ::testing::TestParamInfo<RunCase>& info) { return info.param.run; });

// LoRA / DoRA through `plm train` (adapters from the fixture's initial_adapter/, peft's random A): every step's
// loss and grad norm as peft's, the final adapter directory as peft's final_adapter/ and the merged final-hf as
// peft's merge_and_unload(). Measured: losses within 2e-6, adapters within 4e-6 (LoRA) / 1.1e-5 (DoRA) of the
// tensor's largest value, as close as PyTorch's own float64 rerun.
class PyTorchLoraRun : public ::testing::TestWithParam<std::string> {};

TEST_P(PyTorchLoraRun, LossesAdapterAndMergedWeightsMatchPeft) {
  const std::string run = GetParam();
  const std::filesystem::path out = testing::fresh_temp_dir();
  const TrainConfig config =
      fixture_config(run, out, {"lora.init=" + (training_run_dir(run) / "initial_adapter").string(), "lora.merge=true",
                             "export_dtype=f32"});
  distributed::SingleRankCommunicator world("world");
  absl::StatusOr<TrainRunResult> result = run_training(config, world);
  ASSERT_TRUE(result.ok()) << result.status();

  const nlohmann::json want = read_run_metrics(run)["steps"];
  std::ifstream in(out / "metrics.jsonl");
  size_t k = 0;
  for (std::string line; std::getline(in, line); ++k) {
    ASSERT_LT(k, want.size());
    const nlohmann::json got = nlohmann::json::parse(line);
    EXPECT_NEAR(got["loss"].get<double>(), want[k]["loss"].get<double>(), 1e-4 * want[k]["loss"].get<double>())
        << "step " << k + 1;
    EXPECT_NEAR(got["grad_norm"].get<double>(), want[k]["grad_norm"].get<double>(),
                1e-3 * want[k]["grad_norm"].get<double>()) << "step " << k + 1;
  }
  EXPECT_EQ(k, want.size());

  const auto compare_file = [&](const std::filesystem::path& ours, const std::filesystem::path& theirs) {
    absl::StatusOr<model::WeightStore> store = model::WeightStore::open(ours.string());
    PLM_CHECK(store.ok()) << store.status();
    std::map<std::string, OwnedTensor> loaded;
    return compare_with_fixture(theirs, [&](const std::string& name) {
      absl::StatusOr<OwnedTensor> t = store->load(name, DType::kF32);
      return t.ok() ? (loaded[name] = std::move(*t)).view() : Tensor();
    });
  };
  const std::vector<TensorDifference> adapter = compare_file(out / "final-adapter" / "adapter_model.safetensors",
                                                             training_run_dir(run) / "final_adapter" / "adapter_model.safetensors");
  ASSERT_FALSE(adapter.empty());
  EXPECT_LT(adapter.front().relative, 3e-5) << worst_of(adapter);
  const std::vector<TensorDifference> merged = compare_file(out / "final-hf" / "model.safetensors",
                                                            training_run_dir(run) / "final_merged_targets.safetensors");
  ASSERT_EQ(merged.size(), 14u);
  EXPECT_LT(merged.front().relative, 3e-5) << worst_of(merged);
  std::printf("%s adapters, worst:\n%smerged, worst:\n%s", run.c_str(), worst_of(adapter, 2).c_str(),
              worst_of(merged, 2).c_str());
}

INSTANTIATE_TEST_SUITE_P(Runs, PyTorchLoraRun, ::testing::Values("lora_cls_tied", "dora_cls_tied"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace plm::trainer
