// PlmModel::forward on the tiny golden models (CPU fp32): its error returns; a prompt prefilled in three
// chunks (one boundary inside the image placeholders) and then decoded gives the one-shot prefill's logits
// and HF's; prompts with two images, or a video and an image, give HF's results.
#include "model/plm_model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include "model/generator.h"
#include "model/weights/weight_store.h"
#include "tests/model/fixture_compare.h"
#include "tests/model/golden_case.h"
#include "tests/model/model_test_util.h"

namespace plm::model {
namespace {

using testing::FailsWith;
using testing::fixtures_dir;
using testing::ids_of;
using testing::max_abs_diff;

std::unique_ptr<PlmModel> load_model(const std::string& dir) {
  absl::StatusOr<std::unique_ptr<PlmModel>> model = PlmModel::load(fixtures_dir() + dir, Device::cpu());
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? std::move(*model) : nullptr;
}

OwnedTensor load_expected(const WeightStore& store, const std::string& name) {
  absl::StatusOr<OwnedTensor> t = store.load(name, DType::kF32);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? std::move(*t) : OwnedTensor();
}

TEST(PlmModelForward, ErrorReturns) {
  const std::unique_ptr<PlmModel> model = load_model("cls_tied");
  ASSERT_NE(model, nullptr);
  std::unique_ptr<KvCache> cache = model->make_cache(1, 4);
  const auto forward = [&](const std::vector<int32_t>& ids, const TokenBatch& batch) {
    return model->forward(ids, batch, {}, *cache, /*all_positions=*/false);
  };

  const absl::StatusOr<OwnedTensor> count = forward({128000, 9906, 1}, {{{0, 0, 2}}});
  EXPECT_EQ(count.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(count, FailsWith("3 token ids for a batch of 2 tokens"));

  const int32_t vocab = static_cast<int32_t>(model->config().text.vocab_size);
  for (const int32_t bad : {vocab, -1}) {
    const absl::StatusOr<OwnedTensor> id = forward({128000, bad}, {{{0, 0, 2}}});
    EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(id, FailsWith("token id " + std::to_string(bad) + " outside the vocabulary"));
  }

  const absl::StatusOr<OwnedTensor> length = forward({128000, 9906}, {{{0, 3, 2}}});
  EXPECT_EQ(length.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(length, FailsWith("sequence of 5 tokens exceeds the KV cache length 4"));

  // The same cache still serves a forward that fits.
  EXPECT_TRUE(forward({128000, 9906}, {{{0, 2, 2}}}).ok());
}

class ChunkedPrefill : public ::testing::TestWithParam<std::string> {};

TEST_P(ChunkedPrefill, ThreeChunksThenDecodeMatchOneShotAndHf) {
  const std::string& dir = GetParam();
  const std::unique_ptr<PlmModel> model = load_model(dir);
  ASSERT_NE(model, nullptr);
  absl::StatusOr<testing::GoldenCase> c = testing::load_golden_case(dir, "image");
  ASSERT_TRUE(c.ok()) << c.status();
  absl::StatusOr<WeightStore> expected = WeightStore::open(fixtures_dir() + "expected/" + dir + "/image.safetensors");
  ASSERT_TRUE(expected.ok()) << expected.status();
  const std::vector<int32_t>& ids = c->ids;
  const int64_t s = static_cast<int64_t>(ids.size()), vocab = model->config().text.vocab_size;
  const int32_t image_token = model->config().image_token_id;
  const OwnedTensor image_rows = model->encode_media(c->images);

  std::unique_ptr<KvCache> one_shot_cache = model->make_cache(1, s + 1);
  absl::StatusOr<OwnedTensor> one_shot =
      model->forward(ids, {{{0, 0, s}}}, {image_rows.view(), Tensor()}, *one_shot_cache, /*all_positions=*/true);
  ASSERT_TRUE(one_shot.ok()) << one_shot.status();

  // Chunk boundaries: after the 7th image placeholder (the media rows split between two forwards) and
  // five tokens before the end.
  const int64_t first_placeholder = std::find(ids.begin(), ids.end(), image_token) - ids.begin();
  const std::vector<int64_t> bounds = {0, first_placeholder + 7, s - 5, s};
  ASSERT_TRUE(bounds[0] < bounds[1] && bounds[1] < bounds[2] && bounds[2] < bounds[3]);
  std::unique_ptr<KvCache> chunked_cache = model->make_cache(1, s + 1);
  OwnedTensor chunked({s, vocab}, DType::kF32);
  int64_t rows_used = 0;
  for (size_t k = 0; k + 1 < bounds.size(); ++k) {
    const std::vector<int32_t> chunk(ids.begin() + bounds[k], ids.begin() + bounds[k + 1]);
    const int64_t rows = std::count(chunk.begin(), chunk.end(), image_token);
    const Tensor chunk_rows = rows > 0 ? image_rows.view().slice(0, rows_used, rows_used + rows) : Tensor();
    rows_used += rows;
    absl::StatusOr<OwnedTensor> logits = model->forward(chunk, {{{0, bounds[k], bounds[k + 1] - bounds[k]}}},
                                                        {chunk_rows, Tensor()}, *chunked_cache, /*all_positions=*/true);
    ASSERT_TRUE(logits.ok()) << "chunk " << k << ": " << logits.status();
    copy_tensor(chunked.view().slice(0, bounds[k], bounds[k + 1]), *logits);
  }
  ASSERT_EQ(rows_used, image_rows.size(0));
  const float chunked_vs_one_shot = max_abs_diff(chunked, *one_shot);
  EXPECT_LE(chunked_vs_one_shot, 1e-5f) << "prefill logits, three chunks vs one";

  // Against HF: every position at the kept ids (all other logits are 0), and the last two rows whole.
  const std::vector<int32_t> kept_ids = ids_of(*expected, "logits.kept_ids");
  const OwnedTensor want_kept = load_expected(*expected, "logits.kept");  // (S, K)
  const int64_t k = static_cast<int64_t>(kept_ids.size());
  ASSERT_EQ(want_kept.numel(), s * k);
  float worst = 0.0f;
  for (int64_t p = 0; p < s; ++p) {
    for (int64_t j = 0; j < k; ++j) {
      const float got = chunked.data_as<float>()[p * vocab + kept_ids[j]];
      worst = std::max(worst, std::abs(got - want_kept.data_as<float>()[p * k + j]));
    }
  }
  EXPECT_LE(worst, 1e-4f) << "chunked prefill logits vs HF at the kept ids";
  EXPECT_LE(max_abs_diff(chunked.view().slice(0, s - 2, s), load_expected(*expected, "logits.last2")), 1e-4f);

  // One decode step of HF's first greedy token on both caches: the same logits, whose top two are HF's
  // second generation step.
  const std::vector<int32_t> next = {c->expected_tokens[0]};
  absl::StatusOr<OwnedTensor> decoded_one_shot = model->forward(next, {{{0, s, 1}}}, {}, *one_shot_cache, false);
  absl::StatusOr<OwnedTensor> decoded_chunked = model->forward(next, {{{0, s, 1}}}, {}, *chunked_cache, false);
  ASSERT_TRUE(decoded_one_shot.ok()) << decoded_one_shot.status();
  ASSERT_TRUE(decoded_chunked.ok()) << decoded_chunked.status();
  EXPECT_LE(max_abs_diff(*decoded_chunked, *decoded_one_shot), 1e-5f) << "decode logits after chunked prefill";
  std::vector<float> row(decoded_chunked->data_as<float>(), decoded_chunked->data_as<float>() + vocab);
  const int32_t argmax = static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
  EXPECT_EQ(argmax, c->expected_tokens[1]);
  std::partial_sort(row.begin(), row.begin() + 2, row.end(), std::greater<float>());
  const OwnedTensor top2 = load_expected(*expected, "generate.top2_logits");  // (steps, 2)
  EXPECT_NEAR(row[0], top2.data_as<float>()[2], 1e-4f);
  EXPECT_NEAR(row[1], top2.data_as<float>()[3], 1e-4f);
  std::printf("[chunked prefill] %s: max |chunked - one shot| = %.3g, max |logit - HF| = %.3g\n", dir.c_str(),
              static_cast<double>(chunked_vs_one_shot), static_cast<double>(worst));
}

INSTANTIATE_TEST_SUITE_P(Models, ChunkedPrefill, ::testing::Values("cls_tied", "nocls_untied"));

struct MediaCase {
  std::string model_dir;  // = expected/<model_dir>/
  std::string input;      // two_images | video_image
};

void PrintTo(const MediaCase& m, std::ostream* os) { *os << m.model_dir << "/" << m.input; }

std::string media_case_name(const ::testing::TestParamInfo<MediaCase>& info) {
  return info.param.model_dir + "_" + info.param.input;
}

class SeveralMedia : public ::testing::TestWithParam<MediaCase> {};

// Two images (the second one mirrored, in a later turn), or a video and then an image, in one prompt:
// the embeddings after the scatter of every item, the final hidden states, the last logits and the greedy
// tokens are HF's; with the default stop ids generation ends where HF's would.
TEST_P(SeveralMedia, MatchHf) {
  const MediaCase& m = GetParam();
  const std::unique_ptr<PlmModel> model = load_model(m.model_dir);
  ASSERT_NE(model, nullptr);
  absl::StatusOr<testing::GoldenCase> c = testing::load_golden_case(m.model_dir, m.input);
  ASSERT_TRUE(c.ok()) << c.status();
  absl::StatusOr<WeightStore> expected =
      WeightStore::open(fixtures_dir() + "expected/" + m.model_dir + "/" + m.input + ".safetensors");
  ASSERT_TRUE(expected.ok()) << expected.status();
  ASSERT_TRUE(c->images.view().defined());
  ASSERT_EQ(c->videos.view().defined(), m.input == "video_image");

  CollectingTracer tracer({"text.inputs_embeds", "text.final_hidden"});
  const OwnedTensor image_rows = model->encode_media(c->images);
  const OwnedTensor video_rows = c->videos.view().defined() ? model->encode_media(c->videos) : OwnedTensor();
  const int64_t s = static_cast<int64_t>(c->ids.size()), vocab = model->config().text.vocab_size;
  std::unique_ptr<KvCache> cache = model->make_cache(1, s);
  absl::StatusOr<OwnedTensor> logits = model->forward(c->ids, {{{0, 0, s}}}, {image_rows.view(), video_rows.view()},
                                                      *cache, /*all_positions=*/true, &tracer);
  ASSERT_TRUE(logits.ok()) << logits.status();
  for (const auto& [key, tolerance] : {std::pair{"text.inputs_embeds", 2e-5f}, std::pair{"text.final_hidden", 5e-5f}}) {
    const auto it = tracer.recorded().find(key);
    ASSERT_NE(it, tracer.recorded().end()) << key;
    EXPECT_LE(max_abs_diff(it->second.front(), load_expected(*expected, key)), tolerance) << key;
  }
  const std::vector<int32_t> kept_ids = ids_of(*expected, "logits.kept_ids");
  const OwnedTensor want = load_expected(*expected, "logits.last_kept");  // (K)
  ASSERT_EQ(want.numel(), static_cast<int64_t>(kept_ids.size()));
  ASSERT_EQ(logits->numel(), s * vocab);
  const float* last = logits->data_as<float>() + (s - 1) * vocab;
  float worst = 0.0f;
  for (size_t j = 0; j < kept_ids.size(); ++j) {
    worst = std::max(worst, std::abs(last[kept_ids[j]] - want.data_as<float>()[j]));
  }
  EXPECT_LE(worst, 1e-4f) << "last logits at the kept ids";

  GenerationOptions options;
  options.max_new_tokens = static_cast<int>(c->expected_tokens.size());
  options.eos_ids = {};
  absl::StatusOr<std::vector<GenerationResult>> results = generate(*model, {c->request()}, options);
  ASSERT_TRUE(results.ok()) << results.status();
  EXPECT_EQ((*results)[0].tokens, c->expected_tokens);

  // The default stop ids: HF's greedy tokens up to and including the first of them (if any).
  options.eos_ids = GenerationOptions().eos_ids;
  results = generate(*model, {c->request()}, options);
  ASSERT_TRUE(results.ok()) << results.status();
  const auto stop = std::find_first_of(c->expected_tokens.begin(), c->expected_tokens.end(), options.eos_ids.begin(),
                                       options.eos_ids.end());
  const bool stops = stop != c->expected_tokens.end();
  EXPECT_EQ((*results)[0].tokens, std::vector<int32_t>(c->expected_tokens.begin(), stops ? stop + 1 : stop));
  EXPECT_EQ((*results)[0].hit_eos, stops);
  std::printf("[several media] %s/%s: max |last logit - HF| = %.3g, %s\n", m.model_dir.c_str(), m.input.c_str(),
              static_cast<double>(worst), stops ? "stops on a stop id like HF" : "no stop id in 32 tokens");
}

INSTANTIATE_TEST_SUITE_P(Fixtures, SeveralMedia,
                         ::testing::Values(MediaCase{"cls_tied", "two_images"}, MediaCase{"cls_tied", "video_image"},
                                           MediaCase{"nocls_untied", "two_images"},
                                           MediaCase{"nocls_untied", "video_image"}),
                         media_case_name);

}  // namespace
}  // namespace plm::model
