// PEFT adapter directories (trainer/peft_adapter.h) with peft 0.21.2's own output as the reference
// (tests/fixtures/training/runs/{lora,dora}_cls_tied): reading adapter_config.json, loading the adapter
// values into the model, writing a directory and reading it back, merging final_adapter/ into the base
// weights as merge_and_unload() does (final_merged_targets.safetensors), and errors that name file and key.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/json_fields.h"
#include "model/weights/weight_store.h"
#include "tests/core/test_temp_dir.h"
#include "tests/model/training_samples.h"
#include "tests/trainer/sft_fixture.h"
#include "trainer/peft_adapter.h"

namespace plm::trainer {
namespace {

namespace fs = std::filesystem;

std::string run_dir(const std::string& run) { return testing::training_fixtures() + "runs/" + run + "/"; }

std::unique_ptr<model::PlmModel> tiny_model() {
  absl::StatusOr<std::unique_ptr<model::PlmModel>> m = model::PlmModel::load(
      model::testing::model_fixtures() + "cls_tied", Device::cpu(), {}, {.for_training = true});
  PLM_CHECK(m.ok()) << m.status();
  return std::move(*m);
}

std::vector<float> host(Tensor t) {
  const OwnedTensor h = to_device(t, Device::cpu());
  return std::vector<float>(h.data_as<float>(), h.data_as<float>() + h.numel());
}

// Every adapter tensor of the model equals the one stored under its PEFT key in `file`, bit for bit.
void expect_adapters_equal_file(model::PlmModel& model, const std::string& file, size_t expected_count) {
  absl::StatusOr<model::WeightStore> store = model::WeightStore::open(file);
  ASSERT_TRUE(store.ok()) << store.status();
  size_t count = 0;
  model.for_each_parameter([&](const std::string& name, Tensor& t) {
    if (!model::is_lora_parameter(name)) return;
    ++count;
    absl::StatusOr<OwnedTensor> want = store->load(model::kPeftKeyPrefix + name);
    ASSERT_TRUE(want.ok()) << want.status();
    EXPECT_EQ(want->dtype(), DType::kF32) << name;
    EXPECT_EQ(host(t), host(*want)) << name;
  });
  EXPECT_EQ(count, expected_count);
  EXPECT_EQ(store->size(), expected_count);
}

TEST(PeftAdapter, ReadsPeftsConfig) {
  for (const auto& [run, dora] : {std::pair<std::string, bool>{"lora_cls_tied", false}, {"dora_cls_tied", true}}) {
    absl::StatusOr<model::LoraSpec> spec = read_peft_adapter_config(run_dir(run) + "initial_adapter");
    ASSERT_TRUE(spec.ok()) << spec.status();
    EXPECT_EQ(spec->rank, 4);
    EXPECT_EQ(spec->alpha, 8.0);
    EXPECT_EQ(spec->dropout, 0.0);
    EXPECT_EQ(spec->dora, dora);
    EXPECT_EQ(spec->targets.size(), 7u);
    EXPECT_EQ(spec->scaling(), 2.0f);
  }
}

TEST(PeftAdapter, LoadsEveryAdapterTensorOfTheFixture) {
  for (const auto& [run, count] : {std::pair<std::string, size_t>{"lora_cls_tied", 28}, {"dora_cls_tied", 42}}) {
    SCOPED_TRACE(run);
    std::unique_ptr<model::PlmModel> model = tiny_model();
    ASSERT_TRUE(load_peft_adapter(run_dir(run) + "initial_adapter", *model).ok());
    ASSERT_TRUE(model->lora().has_value());
    expect_adapters_equal_file(*model, run_dir(run) + "initial_adapter/adapter_model.safetensors", count);
  }
}

TEST(PeftAdapter, WritesADirectoryThatReadsBack) {
  std::unique_ptr<model::PlmModel> model = tiny_model();
  ASSERT_TRUE(load_peft_adapter(run_dir("dora_cls_tied") + "final_adapter", *model).ok());
  const fs::path dir = plm::testing::fresh_temp_dir() / "adapter";
  ASSERT_TRUE(write_peft_adapter(dir, *model, "tests/fixtures/models/cls_tied").ok());
  expect_adapters_equal_file(*model, (dir / kAdapterWeightsFile).string(), 42);

  absl::StatusOr<model::WeightStore> store = model::WeightStore::open((dir / kAdapterWeightsFile).string());
  ASSERT_TRUE(store.ok());
  absl::StatusOr<model::WeightStore> peft = model::WeightStore::open(run_dir("dora_cls_tied") +
                                                                     "final_adapter/adapter_model.safetensors");
  ASSERT_TRUE(peft.ok());
  EXPECT_EQ(store->names(), peft->names());  // the same keys as peft's own file

  absl::StatusOr<model::LoraSpec> spec = read_peft_adapter_config(dir);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->rank, 4);
  EXPECT_TRUE(spec->dora);
  absl::StatusOr<std::string> config = model::read_text_file((dir / kAdapterConfigFile).string());
  ASSERT_TRUE(config.ok());
  const nlohmann::json json = nlohmann::json::parse(*config);
  EXPECT_EQ(json.at("base_model_name_or_path"), "tests/fixtures/models/cls_tied");
  EXPECT_EQ(json.at("target_modules"),
            nlohmann::json({"down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"}));

  std::unique_ptr<model::PlmModel> reloaded = tiny_model();
  ASSERT_TRUE(load_peft_adapter(dir, *reloaded).ok());
  expect_adapters_equal_file(*reloaded, (dir / kAdapterWeightsFile).string(), 42);
}

TEST(PeftAdapter, MergingFinalAdapterGivesPeftsMergedWeights) {
  for (const std::string run : {"lora_cls_tied", "dora_cls_tied"}) {
    SCOPED_TRACE(run);
    std::unique_ptr<model::PlmModel> model = tiny_model();
    ASSERT_TRUE(load_peft_adapter(run_dir(run) + "final_adapter", *model).ok());
    const std::map<std::string, OwnedTensor> merged = merged_lora_weights(*model);
    absl::StatusOr<model::WeightStore> want = model::WeightStore::open(run_dir(run) +
                                                                       "final_merged_targets.safetensors");
    ASSERT_TRUE(want.ok());
    ASSERT_EQ(merged.size(), want->size());
    double worst = 0.0;
    for (const auto& [name, tensor] : merged) {
      absl::StatusOr<OwnedTensor> expected = want->load(name);
      ASSERT_TRUE(expected.ok()) << expected.status();
      const std::vector<float> a = host(tensor), b = host(*expected);
      ASSERT_EQ(a.size(), b.size()) << name;
      double largest = 0.0, diff = 0.0;
      for (size_t i = 0; i < a.size(); ++i) {
        largest = std::max(largest, std::abs(static_cast<double>(b[i])));
        diff = std::max(diff, std::abs(static_cast<double>(a[i]) - b[i]));
      }
      EXPECT_LE(diff, 1e-6 * largest) << name;
      worst = std::max(worst, diff / largest);
    }
    std::printf("%s: merged weights within %.3g of each tensor's max |value|\n", run.c_str(), worst);
  }
}

// A copy of the fixture's initial adapter with its config edited.
fs::path edited_adapter(const std::function<void(nlohmann::json&)>& edit) {
  const fs::path dir = plm::testing::fresh_temp_dir() / "edited";
  fs::create_directories(dir);
  const fs::path source = run_dir("lora_cls_tied") + "initial_adapter/";
  fs::copy_file(source / kAdapterWeightsFile, dir / kAdapterWeightsFile);
  absl::StatusOr<std::string> text = model::read_text_file((source / kAdapterConfigFile).string());
  PLM_CHECK(text.ok());
  nlohmann::json config = nlohmann::json::parse(*text);
  edit(config);
  std::ofstream(dir / kAdapterConfigFile) << config.dump();
  return dir;
}

TEST(PeftAdapter, RejectsWhatItDoesNotComputeNamingFileAndKey) {
  const std::vector<std::pair<std::function<void(nlohmann::json&)>, std::string>> cases = {
      {[](nlohmann::json& c) { c["use_rslora"] = true; }, "use_rslora"},
      {[](nlohmann::json& c) { c["peft_type"] = "IA3"; }, "peft_type"},
      {[](nlohmann::json& c) { c["target_modules"] = ".*proj"; }, "target_modules"},
      {[](nlohmann::json& c) { c["target_modules"] = {"q_proj", "qkv"}; }, "qkv"},
      {[](nlohmann::json& c) { c["modules_to_save"] = {"lm_head"}; }, "modules_to_save"},
      {[](nlohmann::json& c) { c["r"] = 8; }, "lora_A"},  // shapes no longer match the file
  };
  for (const auto& [edit, key] : cases) {
    const fs::path dir = edited_adapter(edit);
    std::unique_ptr<model::PlmModel> model = tiny_model();
    const absl::Status status = load_peft_adapter(dir, *model);
    EXPECT_FALSE(status.ok()) << key;
    EXPECT_NE(status.message().find(key), std::string::npos) << status;
    EXPECT_NE(status.message().find(dir.string()), std::string::npos) << status;
  }
}

}  // namespace
}  // namespace plm::trainer
