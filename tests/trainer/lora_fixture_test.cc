// LoRA and DoRA against peft 0.21.2 (tests/fixtures/training/runs/{lora,dora}_cls_tied): the adapters of
// initial_adapter/ loaded into cls_tied, two DataParallelStep steps with the run's settings (AdamW betas
// 0.9 / 0.95, eps 1e-8, weight decay 0.1, the metrics' lr, grad_clip 1.8, 4 samples per step, one per
// micro-batch) give peft's step losses and grad norms and, before clipping, its summed step-1 and step-2
// gradients of every adapter tensor. Decay follows torch's ndim >= 2 rule: A and B decay, DoRA's m does not.
// Measured (CPU f32): losses within 4.4e-7 relative, grad norms 3.2e-7, gradients 2.5e-6 of each tensor's
// largest |value|; checked at 5e-6, 5e-6 and 1e-5.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "distributed/single_rank_communicator.h"
#include "model/json_fields.h"
#include "model/lora.h"
#include "model/weights/weight_store.h"
#include "tests/model/training_samples.h"
#include "tests/trainer/sft_fixture.h"
#include "trainer/data_parallel_step.h"
#include "trainer/peft_adapter.h"

namespace plm::trainer {
namespace {

using testing::FixtureLabels;
using testing::sft_fixture_batches;
using testing::training_fixtures;

// peft's parameter name while training for an adapter tensor of ours ("….lora_A.weight" ->
// "base_model.model.….lora_A.default.weight", "….lora_magnitude_vector" -> "….lora_magnitude_vector.default.weight").
std::string peft_training_name(const std::string& name) {
  const std::string key = model::kPeftKeyPrefix + name;
  for (const std::string suffix : {".lora_A", ".lora_B"}) {
    const std::string weight = suffix + ".weight";
    if (key.ends_with(weight)) return key.substr(0, key.size() - weight.size()) + suffix + ".default.weight";
  }
  return key + ".default.weight";
}

std::vector<float> host(Tensor t) {
  const OwnedTensor h = to_device(t, Device::cpu());
  return std::vector<float>(h.data_as<float>(), h.data_as<float>() + h.numel());
}

// Every adapter gradient of `step` against the fixture's, per tensor within rtol of its largest |value|;
// returns the worst such relative error.
double compare_gradients(const DataParallelStep& step, const std::string& file, double rtol) {
  absl::StatusOr<model::WeightStore> want = model::WeightStore::open(file);
  PLM_CHECK(want.ok()) << want.status();
  EXPECT_EQ(want->size(), step.grads().entries().size()) << file;
  double worst = 0.0;
  for (const model::FlatEntry& e : step.grads().entries()) {
    const std::string key = peft_training_name(e.name);
    absl::StatusOr<OwnedTensor> expected = want->load(key, DType::kF32);
    if (!expected.ok()) {
      ADD_FAILURE() << file << ": " << expected.status();
      continue;
    }
    EXPECT_EQ(expected->shape(), e.shape) << key;
    const std::vector<float> got = host(step.grads().flat().slice(0, e.offset, e.offset + e.numel));
    double largest = 0.0, diff = 0.0;
    for (int64_t i = 0; i < e.numel; ++i) {
      largest = std::max(largest, std::abs(static_cast<double>(expected->data_as<float>()[i])));
      diff = std::max(diff, std::abs(static_cast<double>(expected->data_as<float>()[i]) - got[static_cast<size_t>(i)]));
    }
    if (largest == 0.0) {  // step 1's lora_A: exactly zero, since lora_B starts at 0
      EXPECT_EQ(diff, 0.0) << key;
      continue;
    }
    EXPECT_LE(diff, rtol * largest) << key << " (largest |g| " << largest << ")";
    worst = std::max(worst, diff / largest);
  }
  return worst;
}

class LoraFixtureRun : public ::testing::TestWithParam<std::string> {};

TEST_P(LoraFixtureRun, TwoStepsMatchPeft) {
  const std::string run = training_fixtures() + "runs/" + GetParam() + "/";
  absl::StatusOr<std::string> text = model::read_text_file(run + "metrics.json");
  ASSERT_TRUE(text.ok()) << text.status();
  const nlohmann::json metrics = nlohmann::json::parse(*text);

  absl::StatusOr<std::unique_ptr<model::PlmModel>> m = model::PlmModel::load(
      model::testing::model_fixtures() + "cls_tied", Device::cpu(), {}, {.for_training = true});
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_TRUE(load_peft_adapter(run + "initial_adapter", **m).ok());
  distributed::SingleRankCommunicator dp("dp");
  DataParallelStep step(**m, dp,
                        {.zero_stage = 0,
                         .adamw = {.beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f},
                         .grad_clip = 1.8f},
                        model::is_lora_parameter);
  EXPECT_EQ(step.num_trainable(), metrics.at("trainable_numel").get<int64_t>());
  // Decay: ShardedAdamW decays entries of >= 2 dims; our adapter shapes are torch's, so it decays what peft's
  // run decayed (A and B, not m).
  std::map<std::string, nlohmann::json> peft_trainable;
  for (const nlohmann::json& t : metrics.at("trainable")) peft_trainable[t.at("name").get<std::string>()] = t;
  ASSERT_EQ(step.params().entries().size(), peft_trainable.size());
  for (const model::FlatEntry& e : step.params().entries()) {
    const nlohmann::json& t = peft_trainable.at(peft_training_name(e.name));
    EXPECT_EQ(Shape(t.at("shape").begin(), t.at("shape").end()), e.shape) << e.name;
    EXPECT_EQ(e.shape.rank() >= 2, t.at("weight_decay").get<bool>()) << e.name;
  }

  std::vector<OwnedTensor> storage;
  for (int k = 1; k <= 2; ++k) {
    const nlohmann::json& want = metrics.at("steps").at(static_cast<size_t>(k - 1));
    const std::vector<int> lines = want.at("samples").get<std::vector<int>>();
    const std::vector<model::TrainingBatch> batches = sft_fixture_batches(lines, FixtureLabels::kAssistant, storage);
    absl::StatusOr<StepStats> stats = step.step(batches, want.at("lr").get<float>());
    ASSERT_TRUE(stats.ok()) << stats.status();
    const double loss = want.at("loss").get<double>(), grad_norm = want.at("grad_norm").get<double>();
    EXPECT_EQ(stats->labelled_tokens, want.at("tokens").get<int64_t>());
    EXPECT_NEAR(stats->loss, loss, 5e-6 * loss) << "step " << k;
    EXPECT_NEAR(stats->grad_norm, grad_norm, 5e-6 * grad_norm) << "step " << k;
    const double worst = compare_gradients(step, run + "grads_step" + std::to_string(k) + ".safetensors", 1e-5);
    ::testing::Test::RecordProperty("step" + std::to_string(k) + "_grad_rel_err", std::to_string(worst));
    std::printf("%s step %d: loss %.9g (peft %.9g), grad_norm %.9g (peft %.9g), worst grad error %.3g of max\n",
                GetParam().c_str(), k, stats->loss, loss, stats->grad_norm, grad_norm, worst);
  }
}

INSTANTIATE_TEST_SUITE_P(Runs, LoraFixtureRun, ::testing::Values("lora_cls_tied", "dora_cls_tied"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace plm::trainer
