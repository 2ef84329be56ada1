// HF names: the expected tensor list against spec/plm_spec.md §5 and §1.6, the tying rule, and
// validate_checkpoint on tiny checkpoints written into a temporary directory.
#include "model/weights/hf_names.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>

#include "tests/model/model_test_util.h"

namespace plm::model {
namespace {

using testing::config_dir;
using testing::FailsWith;
using testing::fresh_temp_dir;

PlmConfig load(const std::string& name) {
  absl::StatusOr<PlmConfig> config = load_plm_config(config_dir(name));
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? *config : PlmConfig{};
}

std::map<std::string, Shape> expected_map(const PlmConfig& config) {
  std::map<std::string, Shape> map;
  for (const ExpectedTensor& e : expected_tensors(config)) {
    EXPECT_TRUE(map.emplace(e.name, e.shape).second) << "duplicate " << e.name;
  }
  return map;
}

TEST(HfNames, BuildsFullNames) {
  EXPECT_EQ(vision_block_name(3, "attn.qkv.weight"), "model.vision_tower.timm_model.blocks.3.attn.qkv.weight");
  EXPECT_EQ(vision_name("cls_token"), "model.vision_tower.timm_model.cls_token");
  EXPECT_EQ(projector_name("linear_2.bias"), "model.multi_modal_projector.linear_2.bias");
  EXPECT_EQ(text_layer_name(15, "mlp.down_proj.weight"), "model.language_model.layers.15.mlp.down_proj.weight");
  EXPECT_EQ(text_name("norm.weight"), "model.language_model.norm.weight");
}

// Shapes from the tables of spec §5.1-5.3; element counts add up to §1.6.
TEST(HfNames, OneBillionShapesMatchTheSpec) {
  const PlmConfig config = load("plm-1b");
  const std::map<std::string, Shape> m = expected_map(config);
  EXPECT_EQ(m.at(vision_name("cls_token")), Shape({1, 1, 1024}));
  EXPECT_EQ(m.at(vision_name("pos_embed")), Shape({1, 1025, 1024}));
  EXPECT_EQ(m.at(vision_name("patch_embed.proj.weight")), Shape({1024, 3, 14, 14}));
  EXPECT_FALSE(m.contains(vision_name("patch_embed.proj.bias")));
  EXPECT_EQ(m.at(vision_name("norm_pre.bias")), Shape({1024}));
  EXPECT_EQ(m.at(vision_block_name(22, "attn.qkv.weight")), Shape({3072, 1024}));
  EXPECT_EQ(m.at(vision_block_name(22, "gamma_2")), Shape({1024}));
  EXPECT_EQ(m.at(vision_block_name(0, "mlp.fc2.weight")), Shape({1024, 4096}));
  EXPECT_FALSE(m.contains(vision_block_name(23, "norm1.weight")));
  EXPECT_FALSE(m.contains(vision_name("norm.weight")));
  EXPECT_EQ(m.at(projector_name("linear_1.weight")), Shape({2048, 1024}));
  EXPECT_EQ(m.at(kEmbedTokensName), Shape({128256, 2048}));
  EXPECT_EQ(m.at(text_layer_name(15, "self_attn.k_proj.weight")), Shape({512, 2048}));
  EXPECT_EQ(m.at(text_layer_name(15, "mlp.gate_proj.weight")), Shape({8192, 2048}));
  EXPECT_FALSE(m.contains(kLmHeadName));
  EXPECT_EQ(m.size(), 5u + 23 * 14 + 4 + 1 + 16 * 9 + 1);
}

TEST(HfNames, EightBillionShapesMatchTheSpec) {
  const std::map<std::string, Shape> m = expected_map(load("plm-8b"));
  EXPECT_FALSE(m.contains(vision_name("cls_token")));
  EXPECT_EQ(m.at(vision_name("pos_embed")), Shape({1, 1024, 1536}));
  EXPECT_EQ(m.at(vision_block_name(46, "mlp.fc1.weight")), Shape({8960, 1536}));
  EXPECT_EQ(m.at(projector_name("linear_2.weight")), Shape({4096, 4096}));
  EXPECT_EQ(m.at(text_layer_name(31, "self_attn.v_proj.weight")), Shape({1024, 4096}));
  EXPECT_EQ(m.at(text_layer_name(31, "mlp.down_proj.weight")), Shape({4096, 14336}));
  EXPECT_EQ(m.at(kLmHeadName), Shape({128256, 4096}));
}

TEST(HfNames, ElementCountsEqualParameterCounts) {
  for (const char* name : {"plm-1b", "plm-3b", "plm-8b", "tiny"}) {
    SCOPED_TRACE(name);
    const PlmConfig config = load(name);
    int64_t total = 0;
    for (const ExpectedTensor& e : expected_tensors(config)) total += e.shape.numel();
    EXPECT_EQ(total, count_parameters(config).total);
  }
}

// Writes a bf16 checkpoint of zeros with the expected tensors of `config`, after `edit` changed the list.
std::string write_checkpoint(const PlmConfig& config,
                             const std::function<void(std::vector<ExpectedTensor>&)>& edit = {}) {
  std::vector<ExpectedTensor> tensors = expected_tensors(config);
  if (edit) edit(tensors);
  std::vector<OwnedTensor> owned;
  std::vector<NamedTensor> named;
  for (const ExpectedTensor& e : tensors) {
    owned.emplace_back(e.shape, DType::kBF16);
    std::fill_n(static_cast<char*>(owned.back().view().data()), owned.back().view().nbytes(), 0);
  }
  for (size_t i = 0; i < tensors.size(); ++i) named.push_back({tensors[i].name, owned[i]});
  const auto dir = fresh_temp_dir();
  EXPECT_TRUE(write_safetensors((dir / "model.safetensors").string(), named, {{"format", "pt"}}).ok());
  return dir.string();
}

absl::Status validate(const std::string& dir, const PlmConfig& config) {
  absl::StatusOr<WeightStore> store = WeightStore::open(dir);
  if (!store.ok()) return store.status();
  return validate_checkpoint(*store, config);
}

TEST(ValidateCheckpoint, AcceptsACompleteTinyCheckpoint) {
  const PlmConfig config = load("tiny");
  const std::string dir = write_checkpoint(config, [](std::vector<ExpectedTensor>& t) {
    t.push_back({text_layer_name(0, "self_attn.rotary_emb.inv_freq"), {4}});  // ignorable buffer
  });
  EXPECT_TRUE(validate(dir, config).ok()) << validate(dir, config);
  const absl::StatusOr<WeightStore> store = WeightStore::open(dir);
  ASSERT_TRUE(store.ok());
  EXPECT_EQ(*lm_head_tensor_name(*store, config), kEmbedTokensName);
}

TEST(ValidateCheckpoint, ListsEveryMissingUnexpectedAndMisshapedTensor) {
  const PlmConfig config = load("tiny");
  const std::string dir = write_checkpoint(config, [](std::vector<ExpectedTensor>& t) {
    std::erase_if(t, [](const ExpectedTensor& e) {
      return e.name == vision_block_name(1, "gamma_1") || e.name == text_layer_name(1, "mlp.up_proj.weight");
    });
    for (ExpectedTensor& e : t) {
      if (e.name == projector_name("linear_1.weight")) e.shape = {32, 16};
    }
    t.push_back({"model.vision_tower.timm_model.head.weight", {2, 32}});
  });
  EXPECT_THAT(validate(dir, config),
              FailsWith("checkpoint does not match the config", "2 missing:", vision_block_name(1, "gamma_1"),
                        text_layer_name(1, "mlp.up_proj.weight"), "1 wrong:",
                        "model.multi_modal_projector.linear_1.weight is (32, 16), expected (32, 32)",
                        "1 unexpected: model.vision_tower.timm_model.head.weight"));
}

TEST(ValidateCheckpoint, TyingRule) {
  PlmConfig tied = load("tiny");
  const int64_t vocab = tied.text.vocab_size, hidden = tied.text.hidden_size;
  // Tied in the config but lm_head.weight present: HF uses it, so it is accepted and preferred.
  const std::string with_head = write_checkpoint(tied, [&](std::vector<ExpectedTensor>& t) {
    t.push_back({kLmHeadName, {vocab, hidden}});
  });
  EXPECT_TRUE(validate(with_head, tied).ok()) << validate(with_head, tied);
  const absl::StatusOr<WeightStore> store = WeightStore::open(with_head);
  ASSERT_TRUE(store.ok());
  EXPECT_EQ(*lm_head_tensor_name(*store, tied), kLmHeadName);

  const std::string wrong_head = write_checkpoint(tied, [&](std::vector<ExpectedTensor>& t) {
    t.push_back({kLmHeadName, {vocab, hidden + 1}});
  });
  EXPECT_THAT(validate(wrong_head, tied), FailsWith("lm_head.weight is (128256, 33), expected (128256, 32)"));

  // Untied without lm_head.weight: missing.
  PlmConfig untied = tied;
  untied.tie_word_embeddings = false;
  const std::string no_head = write_checkpoint(tied);
  EXPECT_THAT(validate(no_head, untied), FailsWith("1 missing: lm_head.weight"));
  const absl::StatusOr<WeightStore> no_head_store = WeightStore::open(no_head);
  ASSERT_TRUE(no_head_store.ok());
  EXPECT_THAT(lm_head_tensor_name(*no_head_store, untied), FailsWith("no lm_head.weight"));
}

TEST(ValidateCheckpoint, RejectsIntegerWeights) {
  const PlmConfig config = load("tiny");
  const auto dir = fresh_temp_dir();
  std::vector<OwnedTensor> owned;
  std::vector<NamedTensor> named;
  for (const ExpectedTensor& e : expected_tensors(config)) {
    owned.emplace_back(e.shape, e.name == kEmbedTokensName ? DType::kI32 : DType::kF32);
  }
  size_t i = 0;
  for (const ExpectedTensor& e : expected_tensors(config)) named.push_back({e.name, owned[i++]});
  ASSERT_TRUE(write_safetensors((dir / "model.safetensors").string(), named).ok());
  EXPECT_THAT(validate(dir.string(), config),
              FailsWith("model.language_model.embed_tokens.weight has dtype i32, expected a float dtype"));
}

}  // namespace
}  // namespace plm::model
