// PlmConfig parsing: the committed configs, the spec's parameter counts (spec/plm_spec.md §1.6), both
// on-disk spellings of RoPE, LlamaConfig / timm defaults, and the errors for bad configs.
#include "model/config.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "model/json_fields.h"
#include "tests/model/model_test_util.h"

namespace plm::model {
namespace {

using testing::config_dir;
using testing::FailsWith;

nlohmann::json config_json(const std::string& name) {
  const absl::StatusOr<std::string> text = read_text_file(config_dir(name) + "/config.json");
  EXPECT_TRUE(text.ok()) << text.status();
  return nlohmann::json::parse(*text);
}

absl::StatusOr<PlmConfig> parse(const nlohmann::json& json) { return parse_plm_config(json.dump(), "test/config.json"); }

PlmConfig load(const std::string& name) {
  absl::StatusOr<PlmConfig> config = load_plm_config(config_dir(name));
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? *config : PlmConfig{};
}

TEST(PlmConfig, OneBillionMatchesTheSpec) {
  const PlmConfig c = load("plm-1b");
  EXPECT_EQ(c.vision.architecture, "vit_pe_core_large_patch14_336");
  EXPECT_EQ(c.vision.embed_dim, 1024);
  EXPECT_EQ(c.vision.depth, 23);
  EXPECT_EQ(c.vision.num_heads, 16);
  EXPECT_EQ(c.vision.head_dim(), 64);
  EXPECT_EQ(c.vision.mlp_hidden, 4096);
  EXPECT_EQ(c.vision.patch_size, 14);
  EXPECT_EQ(c.vision.img_size, 448);
  EXPECT_EQ(c.vision.grid_size(), 32);
  EXPECT_TRUE(c.vision.class_token);
  EXPECT_EQ(c.vision.seq_len(), 1025);
  EXPECT_EQ(c.vision.rope_grid_offset, 1.0);
  EXPECT_EQ(c.vision.ref_feat_shape, (std::array<int, 2>{32, 32}));
  EXPECT_EQ(c.vision.rope_theta, 10000.0);
  ASSERT_TRUE(c.vision.layer_scale());
  EXPECT_EQ(*c.vision.layer_scale_init, 0.1);
  EXPECT_TRUE(c.vision.pre_norm);
  EXPECT_FALSE(c.vision.post_norm);
  EXPECT_EQ(c.vision.norm_eps, 1e-5);

  EXPECT_EQ(c.text.hidden_size, 2048);
  EXPECT_EQ(c.text.num_layers, 16);
  EXPECT_EQ(c.text.num_heads, 32);
  EXPECT_EQ(c.text.num_kv_heads, 8);
  EXPECT_EQ(c.text.head_dim, 64);
  EXPECT_EQ(c.text.intermediate_size, 8192);
  EXPECT_EQ(c.text.vocab_size, 128256);
  EXPECT_EQ(c.text.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.text.rope_theta, 500000.0);
  ASSERT_TRUE(c.text.rope_scaling.has_value());
  EXPECT_EQ(c.text.rope_scaling->factor, 32.0);
  EXPECT_EQ(c.text.rope_scaling->low_freq_factor, 1.0);
  EXPECT_EQ(c.text.rope_scaling->high_freq_factor, 4.0);
  EXPECT_EQ(c.text.rope_scaling->original_max_position_embeddings, 8192);
  EXPECT_EQ(c.text.max_position_embeddings, 11520);
  EXPECT_EQ(c.text.bos_token_id, 128000);
  EXPECT_EQ(c.text.eos_token_ids, (std::vector<int32_t>{128001, 128009}));

  EXPECT_TRUE(c.vision_use_cls_token);
  EXPECT_EQ(c.projector_pooling_ratio, 2);
  EXPECT_EQ(c.image_token_id, 128002);
  EXPECT_EQ(c.video_token_id, 128003);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.tokens_per_tile(), 256);
}

TEST(PlmConfig, EightBillionHasNoClassTokenNoScalingAndAnUntiedHead) {
  const PlmConfig c = load("plm-8b");
  EXPECT_EQ(c.vision.architecture, "vit_pe_core_gigantic_patch14_448");
  EXPECT_EQ(c.vision.embed_dim, 1536);
  EXPECT_EQ(c.vision.depth, 47);
  EXPECT_EQ(c.vision.head_dim(), 96);
  EXPECT_EQ(c.vision.mlp_hidden, 8960);  // int(1536 * (8960 / 1536)) in double
  EXPECT_FALSE(c.vision.class_token);
  EXPECT_EQ(c.vision.seq_len(), 1024);
  EXPECT_EQ(c.vision.rope_grid_offset, 0.0);
  EXPECT_FALSE(c.vision_use_cls_token);
  EXPECT_FALSE(c.text.rope_scaling.has_value());
  EXPECT_EQ(c.text.head_dim, 128);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.tokens_per_tile(), 256);
}

// spec/plm_spec.md §1.6, exactly.
TEST(PlmConfig, ParameterCountsMatchTheSpec) {
  struct Row {
    const char* name;
    int64_t vision, projector, text, total;
  };
  for (const Row& row : {Row{"plm-1b", 291'415'040, 6'295'552, 1'235'814'400, 1'533'524'992},
                         Row{"plm-3b", 291'415'040, 12'589'056, 3'212'749'824, 3'516'753'920},
                         Row{"plm-8b", 1'740'922'624, 23'076'864, 8'030'261'248, 9'794'260'736}}) {
    SCOPED_TRACE(row.name);
    const ParameterCounts counts = count_parameters(load(row.name));
    EXPECT_EQ(counts.vision, row.vision);
    EXPECT_EQ(counts.projector, row.projector);
    EXPECT_EQ(counts.text, row.text);
    EXPECT_EQ(counts.total, row.total);
  }
}

TEST(PlmConfig, TinyConfigKeepsTheRealArchitectureAndTokenizer) {
  const PlmConfig c = load("tiny");
  EXPECT_EQ(c.vision.architecture, "vit_pe_core_large_patch14_336");
  EXPECT_EQ(c.vision.img_size, 56);
  EXPECT_EQ(c.vision.grid_size(), 4);
  EXPECT_EQ(c.vision.head_dim(), 16);
  EXPECT_EQ(c.vision.mlp_hidden, 128);
  EXPECT_EQ(c.tokens_per_tile(), 4);
  EXPECT_EQ(c.text.vocab_size, 128256);
  EXPECT_EQ(c.text.head_dim, 8);
  EXPECT_TRUE(c.tie_word_embeddings);
  const ParameterCounts counts = count_parameters(c);
  EXPECT_EQ(counts.text, 128256 * 32 + 2 * (2 * 32 + 32 * 32 + 2 * 32 * 16 + 32 * 32 + 3 * 32 * 128) + 32);
  EXPECT_EQ(counts.vision, 44'992);  // the numbers in configs/README.md
  EXPECT_EQ(counts.projector, 2'112);
  EXPECT_EQ(counts.total, 4'182'176);
}

// Every committed config's image processor tiles at the tower's img_size (PatchEmbed accepts nothing else).
TEST(PlmConfig, ProcessorTileSizeEqualsImgSize) {
  for (const char* name : {"plm-1b", "plm-3b", "plm-8b", "tiny"}) {
    SCOPED_TRACE(name);
    const absl::StatusOr<std::string> text = read_text_file(config_dir(name) + "/preprocessor_config.json");
    ASSERT_TRUE(text.ok()) << text.status();
    const nlohmann::json pre = nlohmann::json::parse(*text);
    EXPECT_EQ(pre["tile_size"].get<int>(), load(name).vision.img_size);
    const nlohmann::json processor = nlohmann::json::parse(*read_text_file(config_dir(name) + "/processor_config.json"));
    EXPECT_EQ(processor["pooling_ratio"].get<int>(), load(name).projector_pooling_ratio);
    EXPECT_EQ(processor["patch_size"].get<int>(), load(name).vision.patch_size);
  }
}

// The 5.x save_pretrained spelling of the same model parses to the same config.
TEST(PlmConfig, TransformersFiveLayoutParsesLikeTheHubLayout) {
  nlohmann::json j = config_json("plm-1b");
  nlohmann::json& text = j["text_config"];
  text["rope_parameters"] = {{"rope_type", "llama3"}, {"rope_theta", 500000.0}, {"factor", 32.0},
                             {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                             {"original_max_position_embeddings", 8192}};
  text.erase("rope_theta");
  text.erase("rope_scaling");
  text.erase("tie_word_embeddings");  // 5.x keeps it at the top level
  j["tie_word_embeddings"] = true;
  j["dtype"] = "bfloat16";
  j["vision_config"]["num_classes"] = 2;
  const absl::StatusOr<PlmConfig> c = parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  const PlmConfig hub = load("plm-1b");
  EXPECT_EQ(c->text.rope_theta, hub.text.rope_theta);
  ASSERT_TRUE(c->text.rope_scaling.has_value());
  EXPECT_EQ(c->text.rope_scaling->factor, 32.0);
  EXPECT_EQ(c->text.rope_scaling->original_max_position_embeddings, 8192);
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_EQ(count_parameters(*c).total, count_parameters(hub).total);

  text["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 250000.0}};
  const absl::StatusOr<PlmConfig> plain = parse(j);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_FALSE(plain->text.rope_scaling.has_value());
  EXPECT_EQ(plain->text.rope_theta, 250000.0);
}

TEST(PlmConfig, TopLevelTieOverridesTextConfig) {
  nlohmann::json j = config_json("plm-1b");
  j["tie_word_embeddings"] = false;
  const absl::StatusOr<PlmConfig> c = parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_TRUE(c->text.tie_word_embeddings);
  EXPECT_EQ(count_parameters(*c).text, 1'235'814'400 + 128256LL * 2048);
}

TEST(PlmConfig, MissingKeysTakeLlamaAndTopLevelDefaults) {
  nlohmann::json j = config_json("plm-1b");
  nlohmann::json& text = j["text_config"];
  for (const char* key : {"rope_theta", "rope_scaling", "rms_norm_eps", "num_key_value_heads", "head_dim",
                          "max_position_embeddings", "tie_word_embeddings"}) {
    text.erase(key);
  }
  for (const char* key : {"projector_pooling_ratio", "image_token_id", "video_token_id", "vision_use_cls_token"}) {
    j.erase(key);
  }
  const absl::StatusOr<PlmConfig> c = parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->text.rope_theta, 10000.0);
  EXPECT_FALSE(c->text.rope_scaling.has_value());
  EXPECT_EQ(c->text.rms_norm_eps, 1e-6);
  EXPECT_EQ(c->text.num_kv_heads, 32);
  EXPECT_EQ(c->text.head_dim, 64);
  EXPECT_EQ(c->text.max_position_embeddings, 2048);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_EQ(c->projector_pooling_ratio, 1);  // not 2 (spec §1.1)
  EXPECT_EQ(c->tokens_per_tile(), 1024);
  EXPECT_EQ(c->image_token_id, 128002);
  EXPECT_EQ(c->video_token_id, 128003);
  EXPECT_TRUE(c->vision_use_cls_token);
}

TEST(PlmConfig, ModelArgsOverrideArchitectureDefaults) {
  nlohmann::json j = config_json("plm-8b");
  nlohmann::json& args = j["vision_config"]["model_args"];
  args["embed_dim"] = 40;  // G's ratio 8960/1536 is not an integer: int(40 * 5.8333...) = 233
  args["num_heads"] = 2;
  args["depth"] = 3;
  args["img_size"] = 28;   // an int means (28, 28)
  args["ref_feat_shape"] = 2;
  args["init_values"] = nullptr;
  args.erase("use_post_transformer_norm");
  const absl::StatusOr<PlmConfig> c = parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->vision.mlp_hidden, 233);
  EXPECT_EQ(c->vision.img_size, 28);
  EXPECT_EQ(c->vision.grid_size(), 2);
  EXPECT_EQ(c->vision.ref_feat_shape, (std::array<int, 2>{2, 2}));
  EXPECT_FALSE(c->vision.layer_scale());
  EXPECT_TRUE(c->vision.post_norm);  // unset: timm keeps the final LayerNorm
  EXPECT_EQ(c->tokens_per_tile(), 1);

  nlohmann::json defaults = config_json("plm-1b");
  defaults["vision_config"]["model_args"] = {{"embed_dim", 1024}, {"global_pool", ""}};
  const absl::StatusOr<PlmConfig> d = parse(defaults);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->vision.depth, 24);
  EXPECT_EQ(d->vision.img_size, 336);
  EXPECT_EQ(d->vision.ref_feat_shape, (std::array<int, 2>{24, 24}));
  EXPECT_FALSE(d->vision.layer_scale());
}

TEST(PlmConfig, ExplicitHeadDimMayDifferFromHiddenOverHeads) {
  nlohmann::json j = config_json("plm-1b");
  j["text_config"]["head_dim"] = 128;
  const absl::StatusOr<PlmConfig> c = parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->text.head_dim, 128);
}

TEST(GenerationConfig, ParsesTheHubFileAndIsOptional) {
  const absl::StatusOr<std::optional<GenerationConfig>> g = load_generation_config(config_dir("plm-1b"));
  ASSERT_TRUE(g.ok()) << g.status();
  ASSERT_TRUE(g->has_value());
  EXPECT_FALSE((*g)->do_sample);
  EXPECT_EQ((*g)->bos_token_id, 128000);
  EXPECT_EQ((*g)->eos_token_ids, (std::vector<int32_t>{128001, 128009}));
  EXPECT_FALSE((*g)->temperature.has_value());

  const auto absent = load_generation_config(testing::fresh_temp_dir().string());
  ASSERT_TRUE(absent.ok()) << absent.status();
  EXPECT_FALSE(absent->has_value());

  const auto sampled =
      parse_generation_config(R"({"do_sample": true, "temperature": 0.6, "top_p": 0.9, "eos_token_id": 7})", "g");
  ASSERT_TRUE(sampled.ok()) << sampled.status();
  EXPECT_TRUE(sampled->do_sample);
  EXPECT_EQ(sampled->temperature, 0.6);
  EXPECT_EQ(sampled->eos_token_ids, (std::vector<int32_t>{7}));
  EXPECT_THAT(parse_generation_config(R"({"top_k": "many"})", "gen.json"),
              FailsWith("gen.json", "top_k must be an integer"));
}

// Each bad config names the file, the key and the arithmetic.
TEST(PlmConfigErrors, MissingFileNamesThePath) {
  EXPECT_THAT(load_plm_config("/nonexistent/plm"), FailsWith("/nonexistent/plm: cannot open"));
  const auto dir = testing::fresh_temp_dir();
  EXPECT_THAT(load_plm_config(dir.string()), FailsWith((dir / "config.json").string(), "cannot open"));
}

TEST(PlmConfigErrors, MalformedJson) {
  EXPECT_THAT(parse_plm_config("{\"text_config\": ", "x/config.json"), FailsWith("x/config.json", "malformed JSON"));
  // A number no double holds is nlohmann's out_of_range, not parse_error: it was an uncaught exception.
  EXPECT_THAT(parse_plm_config("{\"rope_theta\": 1e999}", "x/config.json"), FailsWith("x/config.json", "malformed JSON"));
  EXPECT_THAT(parse_plm_config("{\"a\": " + std::string(100, '[') + std::string(100, ']') + "}", "x/config.json"),
              FailsWith("x/config.json: JSON nested deeper than 64 levels"));
}

TEST(PlmConfigErrors, IntegersBeyondInt64AreRefusedNotWrapped) {
  // 2^64 - 1 used to read as -1 and 2^63 + 5 as INT64_MIN + 5.
  nlohmann::json j = config_json("plm-1b");
  j["text_config"]["bos_token_id"] = UINT64_MAX;
  EXPECT_THAT(parse(j), FailsWith("text_config.bos_token_id must be an integer in the 64-bit range, got 18446744073709551615"));
  j = config_json("plm-1b");
  j["text_config"]["eos_token_id"] = {128001, (uint64_t{1} << 63) + 5};
  EXPECT_THAT(parse(j), FailsWith("text_config.eos_token_id must be an integer or a list of integers"));
}

TEST(PlmConfigErrors, MissingRequiredField) {
  nlohmann::json j = config_json("plm-1b");
  j["text_config"].erase("hidden_size");
  EXPECT_THAT(parse(j), FailsWith("test/config.json", "text_config.hidden_size is missing"));
  j = config_json("plm-1b");
  j.erase("vision_config");
  EXPECT_THAT(parse(j), FailsWith("vision_config is missing"));
  j = config_json("plm-1b");
  j["vision_config"]["model_args"].erase("embed_dim");
  EXPECT_THAT(parse(j), FailsWith("vision_config.model_args.embed_dim is missing"));
}

TEST(PlmConfigErrors, HeadsNotDivisibleByKvHeads) {
  nlohmann::json j = config_json("plm-3b");
  j["text_config"]["num_key_value_heads"] = 7;
  EXPECT_THAT(parse(j), FailsWith("num_attention_heads (24) is not divisible by num_key_value_heads (7): 24 % 7 = 3"));
}

TEST(PlmConfigErrors, HiddenNotDivisibleByHeadsWithoutHeadDim) {
  nlohmann::json j = config_json("plm-1b");
  j["text_config"].erase("head_dim");
  j["text_config"]["num_attention_heads"] = 24;
  j["text_config"]["num_key_value_heads"] = 8;
  EXPECT_THAT(parse(j), FailsWith("hidden_size (2048) is not divisible by num_attention_heads (24)", "2048 % 24 = 8"));
}

TEST(PlmConfigErrors, OddHeadDim) {
  nlohmann::json j = config_json("plm-1b");
  j["text_config"]["head_dim"] = 63;
  EXPECT_THAT(parse(j), FailsWith("text_config.head_dim (63) must be even"));
}

TEST(PlmConfigErrors, UnknownArchitectureNamesTheSupportedOnes) {
  nlohmann::json j = config_json("plm-1b");
  j["vision_config"]["architecture"] = "vit_base_patch16_224";
  EXPECT_THAT(parse(j), FailsWith("vision_config.architecture 'vit_base_patch16_224' is not supported",
                                  "vit_pe_core_large_patch14_336", "vit_pe_core_gigantic_patch14_448"));
}

TEST(PlmConfigErrors, UnsupportedValues) {
  nlohmann::json j = config_json("plm-1b");
  j["text_config"]["rope_scaling"]["rope_type"] = "yarn";
  EXPECT_THAT(parse(j), FailsWith("text_config.rope_scaling.rope_type 'yarn' is not supported"));

  j = config_json("plm-1b");
  j["text_config"]["rope_scaling"].erase("factor");
  EXPECT_THAT(parse(j), FailsWith("text_config.rope_scaling.factor is missing"));

  j = config_json("plm-1b");
  j["text_config"]["hidden_act"] = "gelu";
  EXPECT_THAT(parse(j), FailsWith("text_config.hidden_act 'gelu' is not supported"));

  j = config_json("plm-1b");
  j["vision_config"]["model_args"]["global_pool"] = "map";
  EXPECT_THAT(parse(j), FailsWith("model_args.global_pool must be \"\""));

  j = config_json("plm-1b");
  j["vision_config"]["model_args"]["swiglu_mlp"] = true;
  EXPECT_THAT(parse(j), FailsWith("model_args.swiglu_mlp is not a supported timm Eva argument"));

  j = config_json("plm-1b");
  j["text_config"]["num_hidden_layers"] = 0;
  EXPECT_THAT(parse(j), FailsWith("text_config.num_hidden_layers must be a positive integer, got 0"));

  j = config_json("plm-1b");
  j["text_config"]["vocab_size"] = "128256";
  EXPECT_THAT(parse(j), FailsWith("text_config.vocab_size must be an integer"));

  j = config_json("plm-1b");
  j["image_token_id"] = 200000;
  EXPECT_THAT(parse(j), FailsWith("image_token_id (200000) is outside the vocabulary [0, 128256)"));
}

TEST(PlmConfigErrors, VisionGeometry) {
  nlohmann::json j = config_json("plm-1b");
  j["vision_config"]["model_args"]["img_size"] = {448, 336};
  EXPECT_THAT(parse(j), FailsWith("model_args.img_size must be square"));

  j = config_json("plm-1b");
  j["vision_config"]["model_args"]["img_size"] = {450, 450};
  EXPECT_THAT(parse(j), FailsWith("img_size (450) is not divisible by patch_size (14): 450 % 14 = 2"));

  j = config_json("plm-1b");
  j["vision_config"]["model_args"]["num_heads"] = 12;
  EXPECT_THAT(parse(j), FailsWith("embed_dim (1024) is not divisible by num_heads (12): 1024 % 12 = 4"));

  j = config_json("plm-8b");
  j["vision_use_cls_token"] = true;
  EXPECT_THAT(parse(j), FailsWith("vision_use_cls_token is true but the vision tower", "has no class token",
                                  "1023 tokens"));
}

}  // namespace
}  // namespace plm::model
