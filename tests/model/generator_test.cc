// generate() on the tiny cls_tied model against HF's greedy tokens: several prompts at once (different
// lengths and media) give each prompt's tokens as when run alone, on the paged cache (the default, several
// block sizes) and on the dense one; stopping (EOS, max_new_tokens 0 and 1, a stop callback) ends one sequence
// without changing the others; seeded sampling is reproducible.
#include "model/generator.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "tests/model/golden_case.h"
#include "tests/model/model_test_util.h"

namespace plm::model {
namespace {

using testing::FailsWith;
using testing::GoldenCase;

class Generate : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<PlmModel>> model =
        PlmModel::load(testing::fixtures_dir() + "cls_tied", Device::cpu());
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::move(*model);
    for (const char* input : {"text", "image", "video"}) {
      absl::StatusOr<GoldenCase> c = testing::load_golden_case("cls_tied", input);
      ASSERT_TRUE(c.ok()) << c.status();
      cases_.push_back(std::move(*c));
    }
    options_.max_new_tokens = static_cast<int>(cases_[0].expected_tokens.size());
    options_.eos_ids = {};  // the fixtures generate with stopping disabled
  }

  std::vector<GenerationRequest> requests() const {
    std::vector<GenerationRequest> r;
    for (const GoldenCase& c : cases_) r.push_back(c.request());
    return r;
  }

  std::vector<GenerationResult> run(const std::vector<GenerationRequest>& requests, const GenerationOptions& options) {
    absl::StatusOr<std::vector<GenerationResult>> results = generate(*model_, requests, options);
    EXPECT_TRUE(results.ok()) << results.status();
    return results.ok() ? std::move(*results) : std::vector<GenerationResult>(requests.size());
  }

  std::unique_ptr<PlmModel> model_;
  std::vector<GoldenCase> cases_;  // text, image, video
  GenerationOptions options_;
};

TEST_F(Generate, SeveralPromptsAtOnceMatchEachAlone) {
  std::vector<GenerationResult> results = run(requests(), options_);
  ASSERT_EQ(results.size(), cases_.size());
  for (size_t i = 0; i < cases_.size(); ++i) {
    EXPECT_EQ(results[i].tokens, cases_[i].expected_tokens) << "prompt " << i;
    EXPECT_FALSE(results[i].hit_eos);
    EXPECT_EQ(results[i].prompt_tokens, static_cast<int64_t>(cases_[i].ids.size()));
  }

  // Stopping one sequence early (a stop callback) leaves the others unchanged.
  GenerationOptions options = options_;
  options.should_stop = [](int index, const std::vector<int32_t>& tokens) { return index == 1 && tokens.size() == 3; };
  results = run(requests(), options);
  ASSERT_EQ(results.size(), cases_.size());
  const std::vector<int32_t>& image = cases_[1].expected_tokens;
  EXPECT_EQ(results[1].tokens, std::vector<int32_t>(image.begin(), image.begin() + 3));
  EXPECT_EQ(results[0].tokens, cases_[0].expected_tokens);
  EXPECT_EQ(results[2].tokens, cases_[2].expected_tokens);
}

TEST_F(Generate, DenseAndPagedCachesGiveHfTokens) {
  for (const auto& [kind, block_size] : {std::pair{KvCacheKind::kDense, int64_t{16}},
                                         std::pair{KvCacheKind::kPaged, int64_t{1}},
                                         std::pair{KvCacheKind::kPaged, int64_t{7}}}) {
    GenerationOptions options = options_;
    options.kv_cache = kind;
    options.kv_block_size = block_size;
    const std::vector<GenerationResult> results = run(requests(), options);
    ASSERT_EQ(results.size(), cases_.size());
    for (size_t i = 0; i < cases_.size(); ++i) {
      EXPECT_EQ(results[i].tokens, cases_[i].expected_tokens)
          << "prompt " << i << (kind == KvCacheKind::kDense ? ", dense" : ", paged blocks of ") << block_size;
    }
  }
  GenerationOptions options = options_;
  options.kv_block_size = 0;
  EXPECT_THAT(generate(*model_, requests(), options), FailsWith("kv_block_size is 0"));
}

TEST_F(Generate, EosStopsItsSequenceWithTheEosAndLeavesTheOthers) {
  // The EOS: the first of the image prompt's greedy tokens after the first that neither occurs earlier in
  // it nor anywhere in the other prompts' tokens, so exactly one sequence stops, mid-way.
  const std::vector<int32_t>& text = cases_[0].expected_tokens;
  const std::vector<int32_t>& image = cases_[1].expected_tokens;
  const std::vector<int32_t>& video = cases_[2].expected_tokens;
  const auto occurs = [](int32_t id, const std::vector<int32_t>& tokens, size_t end) {
    return std::find(tokens.begin(), tokens.begin() + end, id) != tokens.begin() + end;
  };
  size_t stop = 1;
  while (stop + 1 < image.size() && (occurs(image[stop], image, stop) || occurs(image[stop], text, text.size()) ||
                                     occurs(image[stop], video, video.size()))) {
    ++stop;
  }
  ASSERT_LT(stop + 1, image.size()) << "no token of the image prompt's greedy tokens can serve as its only EOS";
  GenerationOptions options = options_;
  // 128009 first: no fixture generates it (meta.json: first_stop_index null), so the match must search the list.
  options.eos_ids = {128009, image[stop]};

  const std::vector<GenerationResult> batch = run(requests(), options);
  ASSERT_EQ(batch.size(), 3u);
  EXPECT_EQ(batch[1].tokens, std::vector<int32_t>(image.begin(), image.begin() + stop + 1)) << "EOS at " << stop;
  EXPECT_TRUE(batch[1].hit_eos);
  for (const int i : {0, 2}) {
    EXPECT_EQ(batch[i].tokens, cases_[i].expected_tokens) << "prompt " << i;
    EXPECT_FALSE(batch[i].hit_eos) << "prompt " << i;
    const std::vector<GenerationResult> alone = run({cases_[i].request()}, options);
    ASSERT_EQ(alone.size(), 1u);
    EXPECT_EQ(batch[i].tokens, alone[0].tokens) << "prompt " << i;
  }
}

TEST_F(Generate, ZeroNewTokensReturnsEveryPromptUnchanged) {
  GenerationOptions options = options_;
  options.max_new_tokens = 0;
  const std::vector<GenerationResult> results = run(requests(), options);
  ASSERT_EQ(results.size(), cases_.size());
  for (size_t i = 0; i < cases_.size(); ++i) {
    EXPECT_TRUE(results[i].tokens.empty()) << "prompt " << i;
    EXPECT_FALSE(results[i].hit_eos);
    EXPECT_EQ(results[i].prompt_tokens, static_cast<int64_t>(cases_[i].ids.size()));
  }

  // The requests are still checked.
  GenerationRequest mismatched = cases_[1].request();
  mismatched.image_pixels = Tensor();
  EXPECT_THAT(generate(*model_, {mismatched}, options), FailsWith("request 0", "20 image placeholder tokens"));
}

TEST_F(Generate, NegativeMaxNewTokensIsAnError) {
  GenerationOptions options = options_;
  options.max_new_tokens = -1;
  const absl::StatusOr<std::vector<GenerationResult>> results = generate(*model_, requests(), options);
  EXPECT_EQ(results.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(results, FailsWith("max_new_tokens is -1"));
}

TEST_F(Generate, OneNewTokenIsTheFirstGreedyToken) {
  GenerationOptions options = options_;
  options.max_new_tokens = 1;
  const std::vector<GenerationResult> results = run(requests(), options);
  ASSERT_EQ(results.size(), cases_.size());
  for (size_t i = 0; i < cases_.size(); ++i) {
    EXPECT_EQ(results[i].tokens, std::vector<int32_t>{cases_[i].expected_tokens[0]}) << "prompt " << i;
    EXPECT_FALSE(results[i].hit_eos);
  }
}

TEST_F(Generate, EmptyPromptIsAnError) {
  std::vector<GenerationRequest> r = requests();
  r.push_back(GenerationRequest());
  const absl::StatusOr<std::vector<GenerationResult>> results = generate(*model_, r, options_);
  EXPECT_EQ(results.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(results, FailsWith("request 3: empty prompt"));
}

TEST_F(Generate, MediaPlaceholderMismatchIsAnError) {
  GenerationRequest r;
  r.prompt_ids = {128000, 128002, 128002, 9906};  // 2 image placeholders, no image
  EXPECT_THAT(generate(*model_, {r}, {}), FailsWith("2 image placeholder tokens but the images give 0"));
}

TEST_F(Generate, SeededSamplingRepeatsAndDiffersFromGreedy) {
  std::vector<GenerationRequest> r = requests();
  r[0].sampling = {.temperature = 2.0f, .seed = 11};
  r[1].sampling = {.temperature = 2.0f, .top_k = 50, .top_p = 0.9f, .seed = 12};
  r[2].sampling = {.temperature = 1.0f, .top_k = 1, .seed = 13};  // top-1 of anything is greedy
  const std::vector<GenerationResult> first = run(r, options_), again = run(r, options_);
  ASSERT_EQ(first.size(), 3u);
  ASSERT_EQ(again.size(), 3u);
  for (size_t i = 0; i < r.size(); ++i) EXPECT_EQ(first[i].tokens, again[i].tokens) << "same seed, prompt " << i;
  for (const int i : {0, 1}) {
    EXPECT_EQ(first[i].tokens.size(), cases_[i].expected_tokens.size());
    EXPECT_NE(first[i].tokens, cases_[i].expected_tokens) << "prompt " << i << " sampled at temperature 2";
  }
  EXPECT_EQ(first[2].tokens, cases_[2].expected_tokens);

  // Each sequence draws from its own generator: alone it samples what it samples in the batch, and another
  // seed gives other tokens.
  const std::vector<GenerationResult> alone = run({r[0]}, options_);
  ASSERT_EQ(alone.size(), 1u);
  EXPECT_EQ(alone[0].tokens, first[0].tokens);
  r[0].sampling.seed = 99;
  const std::vector<GenerationResult> reseeded = run({r[0]}, options_);
  ASSERT_EQ(reseeded.size(), 1u);
  EXPECT_NE(reseeded[0].tokens, first[0].tokens);
}

}  // namespace
}  // namespace plm::model
