// PlmModel::step on the tiny golden models (CPU fp32): a mixed schedule (one prompt prefilled in three chunks,
// one boundary inside its media, while another sequence prefills and decodes in the same steps) gives
// identical logits on the dense cache and on paged caches of two block sizes, and HF's greedy tokens; a
// sequence seeded with another's full prefix blocks gives a fresh prefill's logits, also after the owner is
// freed and its blocks reused; chunks asking for no logits get no rows and a reused output keeps its buffer;
// chunk errors leave the cache unchanged; tiles encode alone as together.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "model/plm_model.h"
#include "tests/core/test_util.h"
#include "tests/model/golden_case.h"
#include "tests/model/model_test_util.h"

namespace plm::model {
namespace {

using testing::FailsWith;
using testing::GoldenCase;

std::unique_ptr<PlmModel> load_model(const std::string& dir) {
  absl::StatusOr<std::unique_ptr<PlmModel>> model = PlmModel::load(testing::fixtures_dir() + dir, Device::cpu());
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? std::move(*model) : nullptr;
}

GoldenCase load_case(const std::string& dir, const std::string& input) {
  absl::StatusOr<GoldenCase> c = testing::load_golden_case(dir, input);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? std::move(*c) : GoldenCase();
}

int32_t argmax(Tensor row) {
  const std::vector<float> v = plm::testing::to_vector(row);
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

// A prompt cut into chunks, each with the media rows of its own placeholders (slices of the encoded rows).
struct ChunkedPrompt {
  std::vector<StepChunk> chunks;
  OwnedTensor image_rows, video_rows;
};

ChunkedPrompt chunk_prompt(const PlmModel& model, const GoldenCase& c, SequenceId id,
                           const std::vector<int64_t>& bounds, ChunkLogits logits) {
  ChunkedPrompt p;
  if (c.images.view().defined()) p.image_rows = model.encode_media(c.images);
  if (c.videos.view().defined()) p.video_rows = model.encode_media(c.videos);
  int64_t image_used = 0, video_used = 0;
  for (size_t k = 0; k + 1 < bounds.size(); ++k) {
    StepChunk chunk{.sequence = id,
                    .start = bounds[k],
                    .ids = {c.ids.begin() + bounds[k], c.ids.begin() + bounds[k + 1]},
                    .logits = logits};
    for (auto [token, rows, used, segments] :
         {std::tuple{model.config().image_token_id, p.image_rows.view(), &image_used, &chunk.media.image},
          std::tuple{model.config().video_token_id, p.video_rows.view(), &video_used, &chunk.media.video}}) {
      const int64_t n = std::count(chunk.ids.begin(), chunk.ids.end(), token);
      if (n == 0) continue;
      segments->push_back(rows.slice(0, *used, *used + n));
      *used += n;
    }
    p.chunks.push_back(std::move(chunk));
  }
  return p;
}

// Cut points: after the 7th media placeholder (when there is media) and five tokens before the end.
std::vector<int64_t> bounds_of(const PlmModel& model, const GoldenCase& c) {
  const int64_t s = static_cast<int64_t>(c.ids.size());
  const auto media = std::find_if(c.ids.begin(), c.ids.end(), [&](int32_t id) {
    return id == model.config().image_token_id || id == model.config().video_token_id;
  });
  const int64_t first_cut = media == c.ids.end() ? s / 2 : (media - c.ids.begin()) + 7;
  return {0, first_cut, s - 5, s};
}

struct Schedule {
  std::vector<std::vector<float>> logits;  // every step's logits, flattened
  std::vector<int32_t> tokens;             // sequence 0's greedy tokens, from the prefill's on
};

// Sequence 0 (the case) prefills in three chunks while sequence 1 (another prompt) prefills whole and then
// decodes alongside; then both decode greedily. Paged caches get enough blocks for both. Every step writes
// into one StepOutput (its logits buffer reused).
Schedule run_schedule(const PlmModel& model, KvCache& cache, const GoldenCase& c, const GoldenCase& other,
                      int decode_steps) {
  Schedule out;
  StepOutput reused;
  ChunkedPrompt prompt = chunk_prompt(model, c, 0, bounds_of(model, c), ChunkLogits::kAll);
  ChunkedPrompt second = chunk_prompt(model, other, 1, {0, static_cast<int64_t>(other.ids.size())}, ChunkLogits::kLast);
  int64_t length = 0, other_length = static_cast<int64_t>(other.ids.size());
  int32_t other_next = 0;
  for (size_t k = 0; k < prompt.chunks.size(); ++k) {
    StepBatch batch;
    batch.chunks.push_back(prompt.chunks[k]);
    if (k == 0) {
      batch.chunks.push_back(second.chunks[0]);
    } else {
      batch.chunks.push_back({.sequence = 1, .start = other_length++, .ids = {other_next}});
    }
    const absl::Status status = model.step(batch, cache, reused);
    EXPECT_TRUE(status.ok()) << "prefill chunk " << k << ": " << status;
    if (!status.ok()) return out;
    const int64_t rows = static_cast<int64_t>(batch.chunks[0].ids.size());
    EXPECT_EQ(reused.first_rows, (std::vector<int64_t>{0, rows, rows + 1}));
    out.logits.push_back(plm::testing::to_vector(reused.logits));
    other_next = argmax(reused.last_logits(1));
    length += rows;
    if (k + 1 == prompt.chunks.size()) out.tokens.push_back(argmax(reused.last_logits(0)));
  }
  for (int d = 0; d < decode_steps; ++d) {
    const absl::Status status = model.step({{{.sequence = 0, .start = length++, .ids = {c.expected_tokens[d]}},
                                             {.sequence = 1, .start = other_length++, .ids = {other_next}}}},
                                           cache, reused);
    EXPECT_TRUE(status.ok()) << "decode " << d << ": " << status;
    if (!status.ok()) return out;
    out.logits.push_back(plm::testing::to_vector(reused.logits));
    out.tokens.push_back(argmax(reused.last_logits(0)));
    other_next = argmax(reused.last_logits(1));
  }
  return out;
}

std::unique_ptr<PagedKvCache> paged_cache(const PlmModel& model, int64_t block_size, int64_t max_len) {
  std::unique_ptr<PagedKvCache> cache = model.make_paged_cache(
      {.block_size = block_size,
       .num_blocks = 2 * ((max_len + block_size - 1) / block_size),
       .max_sequence_len = max_len});
  EXPECT_TRUE(cache->add_sequence(0).ok());
  EXPECT_TRUE(cache->add_sequence(1).ok());
  return cache;
}

struct StepCase {
  std::string model, expected_dir, input;  // expected_dir: the fixture with HF's outputs for the model
};

void PrintTo(const StepCase& c, std::ostream* os) { *os << c.model << "_" << c.input; }

class PagedVsDense : public ::testing::TestWithParam<StepCase> {};

TEST_P(PagedVsDense, MixedScheduleGivesIdenticalLogitsAndHfTokens) {
  const std::unique_ptr<PlmModel> model = load_model(GetParam().model);
  ASSERT_NE(model, nullptr);
  const GoldenCase c = load_case(GetParam().expected_dir, GetParam().input);
  const GoldenCase other = load_case(GetParam().expected_dir, "text");
  constexpr int kDecodeSteps = 4;
  const int64_t max_len = static_cast<int64_t>(std::max(c.ids.size(), other.ids.size())) + kDecodeSteps + 4;

  const std::unique_ptr<DenseKvCache> dense = model->make_cache(2, max_len);
  const Schedule want = run_schedule(*model, *dense, c, other, kDecodeSteps);
  EXPECT_EQ(want.tokens, std::vector<int32_t>(c.expected_tokens.begin(), c.expected_tokens.begin() + kDecodeSteps + 1))
      << "greedy tokens vs HF's";

  for (const int64_t block_size : {16, 5}) {
    SCOPED_TRACE("block size " + std::to_string(block_size));
    const std::unique_ptr<PagedKvCache> paged = paged_cache(*model, block_size, max_len);
    const Schedule got = run_schedule(*model, *paged, c, other, kDecodeSteps);
    ASSERT_EQ(got.logits.size(), want.logits.size());
    for (size_t step = 0; step < want.logits.size(); ++step) {
      EXPECT_EQ(got.logits[step], want.logits[step]) << "step " << step << ": paged logits differ from dense";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, PagedVsDense,
                         ::testing::Values(StepCase{"cls_tied", "cls_tied", "text"},
                                           StepCase{"cls_tied", "cls_tied", "image"},
                                           StepCase{"cls_tied", "cls_tied", "video"},
                                           StepCase{"nocls_untied_hub45", "nocls_untied", "image"},
                                           StepCase{"nocls_untied_hub45", "nocls_untied", "video"}),
                         [](const ::testing::TestParamInfo<StepCase>& info) {
                           return info.param.model + "_" + info.param.input;
                         });

// The last logits of `chunk` run alone on `cache` (a new step).
std::vector<float> last_logits(const PlmModel& model, KvCache& cache, const StepChunk& chunk) {
  absl::StatusOr<StepOutput> out = model.step({{chunk}}, cache);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? plm::testing::to_vector(out->last_logits(0)) : std::vector<float>();
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float worst = 0.0f;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

// Sequence 0 prefills the image prompt; sequence 1 starts from its full blocks (the shared prefix ends inside
// the image placeholders) and prefills only the rest with the remaining image rows; sequence 2 prefills the
// whole prompt fresh. 1 and 2 agree, also after 0 is freed and a fourth sequence takes every free block.
TEST(StepPrefixSharing, SeededSequenceMatchesAFreshPrefill) {
  const std::unique_ptr<PlmModel> model = load_model("cls_tied");
  ASSERT_NE(model, nullptr);
  const GoldenCase c = load_case("cls_tied", "image");
  const int64_t s = static_cast<int64_t>(c.ids.size());
  constexpr int64_t kBlock = 8;
  const int64_t blocks_per_prompt = (s + kBlock - 1) / kBlock;
  const std::unique_ptr<PagedKvCache> cache =
      model->make_paged_cache({.block_size = kBlock, .num_blocks = 3 * blocks_per_prompt + 2, .max_sequence_len = 256});
  const ChunkedPrompt whole = chunk_prompt(*model, c, 0, {0, s}, ChunkLogits::kLast);

  ASSERT_TRUE(cache->add_sequence(0).ok());
  const std::vector<float> owner = last_logits(*model, *cache, whole.chunks[0]);
  const int32_t image_token = model->config().image_token_id;
  const int64_t first_placeholder = std::find(c.ids.begin(), c.ids.end(), image_token) - c.ids.begin();
  const int64_t shared_blocks = (first_placeholder + 10) / kBlock;  // ends among the 20 placeholders
  const int64_t shared = shared_blocks * kBlock;
  ASSERT_GT(shared, first_placeholder);
  ASSERT_LT(shared, first_placeholder + 20);
  const std::vector<int32_t> prefix(cache->block_table(0).begin(), cache->block_table(0).begin() + shared_blocks);
  ASSERT_TRUE(cache->add_sequence(1, prefix).ok());
  for (const int32_t block : prefix) EXPECT_EQ(cache->ref_count(block), 2);
  const int64_t used_before = cache->num_used_blocks();

  // Sequence 1: only the tokens past the prefix, with the image rows of their placeholders.
  const int64_t rows_in_prefix = shared - first_placeholder;
  StepChunk rest{.sequence = 1, .start = shared, .ids = {c.ids.begin() + shared, c.ids.end()}};
  rest.media.image.push_back(whole.image_rows.view().slice(0, rows_in_prefix, whole.image_rows.size(0)));
  const std::vector<float> seeded = last_logits(*model, *cache, rest);
  EXPECT_EQ(cache->num_used_blocks() - used_before, blocks_per_prompt - shared_blocks)
      << "sequence 1 took blocks only for its own tokens";
  ASSERT_TRUE(cache->add_sequence(2).ok());
  StepChunk fresh = whole.chunks[0];
  fresh.sequence = 2;
  const std::vector<float> alone = last_logits(*model, *cache, fresh);
  EXPECT_LE(max_abs_diff(seeded, alone), 1e-5f);
  EXPECT_LE(max_abs_diff(owner, alone), 1e-5f);
  std::printf("[prefix sharing] max |seeded - fresh| = %.3g over %lld shared tokens\n",
              static_cast<double>(max_abs_diff(seeded, alone)), static_cast<long long>(shared));
  EXPECT_EQ(argmax(plm::testing::tensor_from({static_cast<int64_t>(alone.size())}, alone)), c.expected_tokens[0]);

  // The owner goes; its shared blocks stay with sequence 1, and a newcomer filling every free block cannot
  // touch them.
  cache->free_sequence(0);
  for (const int32_t block : prefix) EXPECT_EQ(cache->ref_count(block), 1);
  ASSERT_TRUE(cache->add_sequence(3).ok());
  const int64_t filler = cache->num_free_blocks() * kBlock - 8;  // leaves room for the decode steps of 1 and 2
  ASSERT_GT(filler, 0);
  std::vector<int32_t> filler_ids(static_cast<size_t>(filler), 9906);
  last_logits(*model, *cache, {.sequence = 3, .start = 0, .ids = filler_ids});
  for (int d = 0; d < 3; ++d) {
    const int32_t token = c.expected_tokens[d];
    absl::StatusOr<StepOutput> out = model->step(
        {{{.sequence = 1, .start = s + d, .ids = {token}}, {.sequence = 2, .start = s + d, .ids = {token}}}}, *cache);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_LE(max_abs_diff(plm::testing::to_vector(out->last_logits(0)), plm::testing::to_vector(out->last_logits(1))),
              1e-5f)
        << "decode " << d;
    EXPECT_EQ(argmax(out->last_logits(0)), c.expected_tokens[d + 1]) << "decode " << d;
  }
}

TEST(Step, ChunkErrorsNameTheChunkAndLeaveTheCacheUnchanged) {
  const std::unique_ptr<PlmModel> model = load_model("cls_tied");
  ASSERT_NE(model, nullptr);
  const std::unique_ptr<PagedKvCache> cache =
      model->make_paged_cache({.block_size = 4, .num_blocks = 4, .max_sequence_len = 16});
  ASSERT_TRUE(cache->add_sequence(4).ok());
  ASSERT_TRUE(cache->add_sequence(5).ok());
  const StepChunk text{.sequence = 4, .start = 0, .ids = {128000, 9906, 1917}};
  const StepChunk image{.sequence = 5, .start = 0, .ids = {128000, model->config().image_token_id, 9906}};
  const absl::StatusOr<StepOutput> media = model->step({{text, image}}, *cache);
  EXPECT_EQ(media.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(media, FailsWith("chunk 1 (sequence 5): the prompt has 1 image placeholder tokens but the images give 0"));
  const absl::StatusOr<StepOutput> unknown = model->step({{{.sequence = 6, .start = 0, .ids = {1}}}}, *cache);
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  const absl::StatusOr<StepOutput> too_many =
      model->step({{{.sequence = 4, .start = 0, .ids = std::vector<int32_t>(17, 1)}}}, *cache);
  EXPECT_EQ(too_many.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(model->step({}, *cache), FailsWith("a batch without chunks"));
  EXPECT_THAT(model->step({{{.sequence = 4, .start = 0, .ids = {}}}}, *cache), FailsWith("with 0 tokens"));
  EXPECT_EQ(cache->length(4), 0);
  EXPECT_EQ(cache->length(5), 0);
  EXPECT_EQ(cache->num_free_blocks(), 4);
  EXPECT_TRUE(model->step({{text}}, *cache).ok());
  EXPECT_EQ(cache->length(4), 3);
}

// A generated token that equals a placeholder id (past media_end) is an ordinary token, embedded from the table
// as HF does: the same logits as the same decode of any other sequence holding that prompt; before media_end
// the id is still a media slot that needs rows.
TEST(Step, GeneratedPlaceholderIdsAreOrdinaryTokens) {
  const std::unique_ptr<PlmModel> model = load_model("cls_tied");
  ASSERT_NE(model, nullptr);
  const std::unique_ptr<PagedKvCache> cache =
      model->make_paged_cache({.block_size = 4, .num_blocks = 8, .max_sequence_len = 16});
  const std::vector<int32_t> prompt = {128000, 9906, 1917};
  const int32_t image = model->config().image_token_id;
  for (SequenceId id : {1, 2}) {
    ASSERT_TRUE(cache->add_sequence(id).ok());
    ASSERT_TRUE(model->step({{{.sequence = id, .start = 0, .ids = prompt}}}, *cache).ok());
  }
  const StepChunk as_prompt{.sequence = 1, .start = 3, .ids = {image}};
  EXPECT_THAT(model->step({{as_prompt}}, *cache), FailsWith("the prompt has 1 image placeholder tokens"));
  const absl::StatusOr<StepOutput> generated =
      model->step({{{.sequence = 1, .start = 3, .ids = {image}, .media_end = 3},
                    {.sequence = 2, .start = 3, .ids = {image, 9906}, .media_end = 3}}},
                  *cache);
  ASSERT_TRUE(generated.ok()) << generated.status();
  const absl::StatusOr<StepOutput> whole =
      model->step({{{.sequence = 1, .start = 4, .ids = {9906}, .media_end = 3}}}, *cache);
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_LE(max_abs_diff(plm::testing::to_vector(whole->last_logits(0)),
                         plm::testing::to_vector(generated->last_logits(1))),
            1e-5f);
}

// A prefill chunk that asks for no logits gets no rows (a step of only such chunks returns none), the other
// chunks' rows are unchanged, and a reused StepOutput keeps its buffer while the rows fit.
TEST(Step, ChunksWithoutLogitsGetNoRows) {
  const std::unique_ptr<PlmModel> model = load_model("cls_tied");
  ASSERT_NE(model, nullptr);
  const GoldenCase c = load_case("cls_tied", "text");
  const int64_t s = static_cast<int64_t>(c.ids.size()), cut = s / 2;
  const std::unique_ptr<PagedKvCache> cache =
      model->make_paged_cache({.block_size = 16, .num_blocks = 4 * (s / 16 + 1), .max_sequence_len = s});
  for (SequenceId id = 0; id < 4; ++id) ASSERT_TRUE(cache->add_sequence(id).ok());
  const std::vector<int32_t> head(c.ids.begin(), c.ids.begin() + cut), tail(c.ids.begin() + cut, c.ids.end());

  StepOutput out;
  ASSERT_TRUE(model->step({{{.sequence = 0, .start = 0, .ids = head, .logits = ChunkLogits::kNone},
                            {.sequence = 1, .start = 0, .ids = c.ids},
                            {.sequence = 2, .start = 0, .ids = head}}},
                          *cache, out)
                  .ok());
  EXPECT_EQ(out.first_rows, (std::vector<int64_t>{0, 0, 1, 2}));
  const std::vector<float> whole = plm::testing::to_vector(out.last_logits(1));
  EXPECT_EQ(argmax(out.last_logits(1)), c.expected_tokens[0]);
  const void* buffer = out.buffer.view().data();

  ASSERT_TRUE(
      model->step({{{.sequence = 3, .start = 0, .ids = head, .logits = ChunkLogits::kNone}}}, *cache, out).ok());
  EXPECT_EQ(out.first_rows, (std::vector<int64_t>{0, 0}));
  EXPECT_FALSE(out.logits.defined());

  ASSERT_TRUE(model->step({{{.sequence = 0, .start = cut, .ids = tail}, {.sequence = 2, .start = cut, .ids = tail}}},
                          *cache, out)
                  .ok());
  EXPECT_EQ(out.first_rows, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(out.buffer.view().data(), buffer) << "the first step's buffer holds two rows";
  EXPECT_LE(max_abs_diff(plm::testing::to_vector(out.last_logits(0)), whole), 1e-5f);
  EXPECT_LE(max_abs_diff(plm::testing::to_vector(out.last_logits(1)), whole), 1e-5f);
}

TEST(EncodeMedia, TilesEncodeAloneAsTogether) {
  const std::unique_ptr<PlmModel> model = load_model("cls_tied");
  ASSERT_NE(model, nullptr);
  const GoldenCase c = load_case("cls_tied", "image");
  const OwnedTensor together = model->encode_media(c.images);
  ASSERT_EQ(together.size(0), c.images.size(0) * model->config().tokens_per_tile());
  for (int64_t i = 0; i < c.images.size(0); ++i) {
    const OwnedTensor alone = model->encode_media(c.images.view().slice(0, i, i + 1));
    EXPECT_EQ(plm::testing::to_vector(alone), plm::testing::to_vector(model->tile_rows(together, i))) << "tile " << i;
  }
}

}  // namespace
}  // namespace plm::model
