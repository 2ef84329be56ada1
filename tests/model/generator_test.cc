// generate() with several prompts at once (different lengths and media) gives each prompt's tokens as
// when run alone (HF's), and the sampler's rules.
#include "model/generator.h"

#include <gtest/gtest.h>

#include "model/sampler.h"
#include "model/weights/weight_store.h"

namespace plm::model {
namespace {

const std::string kFixtures = std::string(PLM_SOURCE_DIR) + "/tests/fixtures/models/";

OwnedTensor load(const std::string& file, const std::string& name, std::optional<DType> dtype = std::nullopt) {
  absl::StatusOr<WeightStore> store = WeightStore::open(file);
  EXPECT_TRUE(store.ok()) << store.status();
  if (!store->contains(name)) return OwnedTensor();
  absl::StatusOr<OwnedTensor> t = store->load(name, dtype);
  EXPECT_TRUE(t.ok()) << t.status();
  return std::move(*t);
}

std::vector<int32_t> ids(const OwnedTensor& t) { return {t.data_as<int32_t>(), t.data_as<int32_t>() + t.numel()}; }

TEST(Generate, SeveralPromptsAtOnceMatchEachAlone) {
  absl::StatusOr<std::unique_ptr<PlmModel>> model = PlmModel::load(kFixtures + "cls_tied", Device::cpu());
  ASSERT_TRUE(model.ok()) << model.status();
  std::vector<GenerationRequest> requests;
  std::vector<OwnedTensor> pixels;
  std::vector<std::vector<int32_t>> expected;
  for (const char* input : {"text", "image", "video"}) {
    const std::string want = kFixtures + "expected/cls_tied/" + input + ".safetensors";
    const std::string in = kFixtures + "inputs/" + input + ".safetensors";
    GenerationRequest r;
    r.prompt_ids = ids(load(want, "input_ids"));
    for (auto [name, field] : {std::pair{"pixel_values", &GenerationRequest::image_pixels},
                               std::pair{"pixel_values_videos", &GenerationRequest::video_pixels}}) {
      OwnedTensor p = load(in, name, DType::kF32);
      if (!p.view().defined()) continue;
      p.reshape({p.size(1), p.size(2), p.size(3), p.size(4)});
      r.*field = p;
      pixels.push_back(std::move(p));
    }
    requests.push_back(r);
    expected.push_back(ids(load(want, "generate.tokens")));
  }
  GenerationOptions options;
  options.max_new_tokens = 32;
  options.eos_ids = {};
  absl::StatusOr<std::vector<GenerationResult>> results = generate(**model, requests, options);
  ASSERT_TRUE(results.ok()) << results.status();
  for (size_t i = 0; i < requests.size(); ++i) EXPECT_EQ((*results)[i].tokens, expected[i]) << "prompt " << i;

  // Stopping one sequence early (a stop callback) leaves the others unchanged.
  options.should_stop = [](int index, const std::vector<int32_t>& tokens) { return index == 1 && tokens.size() == 3; };
  results = generate(**model, requests, options);
  ASSERT_TRUE(results.ok()) << results.status();
  EXPECT_EQ((*results)[1].tokens, std::vector<int32_t>(expected[1].begin(), expected[1].begin() + 3));
  EXPECT_EQ((*results)[0].tokens, expected[0]);
  EXPECT_EQ((*results)[2].tokens, expected[2]);
}

TEST(Generate, MediaPlaceholderMismatchIsAnError) {
  absl::StatusOr<std::unique_ptr<PlmModel>> model = PlmModel::load(kFixtures + "cls_tied", Device::cpu());
  ASSERT_TRUE(model.ok());
  GenerationRequest r;
  r.prompt_ids = {128000, 128002, 128002, 9906};  // 2 image placeholders, no image
  absl::StatusOr<std::vector<GenerationResult>> results = generate(**model, {r}, {});
  ASSERT_FALSE(results.ok());
  EXPECT_NE(results.status().message().find("2 image placeholder tokens but the images give 0"), std::string::npos)
      << results.status();
}

TEST(Sampler, GreedyTopKAndTopPAndSeeds) {
  const std::vector<float> logits = {0.1f, 2.0f, 1.9f, -1.0f, 2.0f};
  EXPECT_EQ(Sampler({}).sample(logits), 1);  // first maximal index, like torch.argmax
  EXPECT_EQ(Sampler({.temperature = 1.0f, .top_k = 1, .seed = 7}).sample(logits), 1);
  EXPECT_EQ(Sampler({.temperature = 1.0f, .top_p = 1e-6f, .seed = 7}).sample(logits), 1);
  // Same seed, same draws; only the top-3 ids can appear with top_k = 3.
  Sampler a({.temperature = 1.0f, .top_k = 3, .seed = 42}), b({.temperature = 1.0f, .top_k = 3, .seed = 42});
  for (int i = 0; i < 100; ++i) {
    const int32_t x = a.sample(logits);
    EXPECT_EQ(x, b.sample(logits));
    EXPECT_TRUE(x == 1 || x == 2 || x == 4) << x;
  }
}

}  // namespace
}  // namespace plm::model
