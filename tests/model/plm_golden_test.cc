// The CPU fp32 model against HF transformers 5.23 on the tiny golden checkpoints
// (tests/fixtures/models, tools/reference/make_model_fixtures.py): every named intermediate, the logits of
// every prompt position, and 32 greedy tokens, for both configs, both on-disk layouts, image/video/text.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "model/generator.h"
#include "model/plm_model.h"
#include "model/trace.h"
#include "model/weights/weight_store.h"
#include "tests/model/fixture_compare.h"
#include "tests/model/golden_case.h"

namespace plm::model {
namespace {

using testing::fixtures_dir;
using testing::ids_of;
using testing::max_abs_diff;

struct GoldenCase {
  std::string model_dir;   // under tests/fixtures/models
  std::string expected;    // expected/<this>/
  std::string input;       // image | video | text
};

void PrintTo(const GoldenCase& c, std::ostream* os) { *os << c.model_dir << "/" << c.input << " vs expected/" << c.expected; }

std::string case_name(const ::testing::TestParamInfo<GoldenCase>& info) {
  return info.param.model_dir + "_" + info.param.input;
}

class PlmGolden : public ::testing::TestWithParam<GoldenCase> {
 protected:
  void SetUp() override {
    const GoldenCase& c = GetParam();
    absl::StatusOr<std::unique_ptr<PlmModel>> model = PlmModel::load(fixtures_dir() + c.model_dir, Device::cpu());
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::move(*model);
    absl::StatusOr<WeightStore> inputs = WeightStore::open(fixtures_dir() + "inputs/" + c.input + ".safetensors");
    ASSERT_TRUE(inputs.ok()) << inputs.status();
    inputs_ = std::make_unique<WeightStore>(std::move(*inputs));
    absl::StatusOr<WeightStore> expected =
        WeightStore::open(fixtures_dir() + "expected/" + c.expected + "/" + c.input + ".safetensors");
    ASSERT_TRUE(expected.ok()) << expected.status();
    expected_ = std::make_unique<WeightStore>(std::move(*expected));
  }

  OwnedTensor expected(const std::string& name) {
    absl::StatusOr<OwnedTensor> t = expected_->load(name, DType::kF32);
    EXPECT_TRUE(t.ok()) << t.status();
    return std::move(*t);
  }

  // Pixels (N, 3, 56, 56) of the case, or an empty tensor for text.
  OwnedTensor pixels(const std::string& name) {
    if (!inputs_->contains(name)) return OwnedTensor();
    absl::StatusOr<OwnedTensor> t = inputs_->load(name, DType::kF32);
    EXPECT_TRUE(t.ok()) << t.status();
    t->reshape({t->size(1), t->size(2), t->size(3), t->size(4)});
    return std::move(*t);
  }

  // The fixture's tensor names that start with `prefix` (every traced block or layer HF recorded).
  std::vector<std::string> fixture_keys(const std::string& prefix) const {
    std::vector<std::string> keys;
    for (const std::string& name : expected_->names()) {
      if (name.starts_with(prefix)) keys.push_back(name);
    }
    return keys;
  }

  void expect_close(const CollectingTracer& tracer, const std::string& key, float tolerance) {
    const auto it = tracer.recorded().find(key);
    ASSERT_NE(it, tracer.recorded().end()) << key << " was not traced";
    const OwnedTensor want = expected(key);
    const float diff = max_abs_diff(it->second.front(), want);
    EXPECT_LE(diff, tolerance) << key;
    RecordProperty(key, std::to_string(diff));
  }

  std::unique_ptr<PlmModel> model_;
  std::unique_ptr<WeightStore> inputs_, expected_;
};

TEST_P(PlmGolden, IntermediatesAndLogitsMatchHf) {
  const PlmConfig& config = model_->config();
  std::vector<std::string> keys = {"vision.patch_embed", "vision.norm_pre", "vision.last_hidden_state",
                                   "projector.pre_pool", "projector.output", "text.inputs_embeds",
                                   "text.final_hidden"};
  for (int i = 0; i < config.vision.depth; ++i) keys.push_back("vision.blocks." + std::to_string(i));
  for (int l = 0; l < config.text.num_layers; ++l) keys.push_back("text.layers." + std::to_string(l));
  CollectingTracer tracer(keys);

  const std::vector<int32_t> ids = ids_of(*expected_, "input_ids");
  const OwnedTensor images = pixels("pixel_values"), videos = pixels("pixel_values_videos");
  OwnedTensor image_rows, video_rows;
  if (images.view().defined()) image_rows = model_->encode_media(images, &tracer);
  if (videos.view().defined()) video_rows = model_->encode_media(videos, &tracer);
  if (images.view().defined() || videos.view().defined()) {
    for (const char* key : {"vision.patch_embed", "vision.norm_pre", "vision.last_hidden_state", "projector.pre_pool",
                            "projector.output"}) {
      expect_close(tracer, key, 2e-5f);
    }
    const std::vector<std::string> blocks = fixture_keys("vision.blocks.");
    EXPECT_EQ(static_cast<int>(blocks.size()), config.vision.depth) << "vision blocks in the fixture";
    for (const std::string& key : blocks) expect_close(tracer, key, 2e-5f);
  }

  std::unique_ptr<KvCache> cache = model_->make_cache(1, static_cast<int64_t>(ids.size()));
  TokenBatch batch{{{0, 0, static_cast<int64_t>(ids.size())}}};
  absl::StatusOr<OwnedTensor> logits =
      model_->forward(ids, batch, {image_rows.view(), video_rows.view()}, *cache, /*all_positions=*/true, &tracer);
  ASSERT_TRUE(logits.ok()) << logits.status();
  expect_close(tracer, "text.inputs_embeds", 2e-5f);
  const std::vector<std::string> layers = fixture_keys("text.layers.");
  EXPECT_EQ(static_cast<int>(layers.size()), config.text.num_layers) << "decoder layers in the fixture";
  for (const std::string& key : layers) expect_close(tracer, key, 5e-5f);
  expect_close(tracer, "text.final_hidden", 5e-5f);

  // Logits of every position at the kept ids, and of the last two positions over the whole vocabulary.
  const std::vector<int32_t> kept = ids_of(*expected_, "logits.kept_ids");
  const OwnedTensor want_kept = expected("logits.kept");
  const int64_t s = static_cast<int64_t>(ids.size()), vocab = config.text.vocab_size;
  float worst = 0.0f;
  for (int64_t p = 0; p < s; ++p) {
    for (size_t j = 0; j < kept.size(); ++j) {
      const float got = logits->data_as<float>()[p * vocab + kept[j]];
      worst = std::max(worst, std::abs(got - want_kept.data_as<float>()[p * kept.size() + j]));
    }
  }
  EXPECT_LE(worst, 1e-4f) << "logits at kept ids";
  RecordProperty("logits_max_abs_diff", std::to_string(worst));
  const OwnedTensor want_last2 = expected("logits.last2");
  EXPECT_LE(max_abs_diff(logits->view().slice(0, s - 2, s), want_last2), 1e-4f) << "logits of the last two positions";
  std::printf("[golden] %s/%s: max |logit - HF| = %.3g\n", GetParam().model_dir.c_str(), GetParam().input.c_str(),
              static_cast<double>(worst));
}

TEST_P(PlmGolden, GreedyTokensMatchHf) {
  GenerationRequest request;
  request.prompt_ids = ids_of(*expected_, "input_ids");
  const OwnedTensor images = pixels("pixel_values"), videos = pixels("pixel_values_videos");
  request.image_pixels = images;
  request.video_pixels = videos;
  GenerationOptions options;
  options.max_new_tokens = 32;
  options.eos_ids = {};  // the fixtures generate with stopping disabled
  absl::StatusOr<std::vector<GenerationResult>> results = generate(*model_, {request}, options);
  ASSERT_TRUE(results.ok()) << results.status();
  EXPECT_EQ((*results)[0].tokens, ids_of(*expected_, "generate.tokens"));
}

std::vector<GoldenCase> golden_cases() {
  std::vector<GoldenCase> cases;
  for (const char* input : {"image", "video", "text"}) {
    cases.push_back({"cls_tied", "cls_tied", input});
    cases.push_back({"cls_tied_hub45", "cls_tied", input});
    cases.push_back({"nocls_untied", "nocls_untied", input});
    cases.push_back({"nocls_untied_hub45", "nocls_untied", input});
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, PlmGolden, ::testing::ValuesIn(golden_cases()), case_name);

}  // namespace
}  // namespace plm::model
