// The caption job on the tiny cls_tied model in process: many items through one engine, each caption equal to
// its solo greedy generation (model::generate on the inputs `plm generate --video PATH --prompt TEXT` builds);
// bad inputs become error lines and the job goes on; --save-embeddings records carry the mean of the item's
// vision rows.
#include "caption/caption_job.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/container/flat_hash_map.h"
#include "model/generator.h"
#include "serve/prompt_preparer.h"
#include "tests/caption/caption_test_media.h"
#include "tests/core/test_temp_dir.h"
#include "tests/serve/serve_fixture.h"

namespace plm::caption {
namespace {

using serve::testing::tiny_model;

constexpr int64_t kMaxNewTokens = 12;

std::unique_ptr<serve::Engine> start_engine(bool prefix_caching) {
  serve::EngineConfig config;
  config.scheduler = {.max_num_seqs = 4, .max_batch_tokens = 64, .max_media_items_per_step = 6, .max_bypass = 4};
  config.max_model_len = 512;
  config.kv = {.kind = serve::KvCacheKind::kPaged, .bytes = int64_t{16} << 20, .block_tokens = 16,
               .prefix_caching = prefix_caching};
  absl::StatusOr<std::unique_ptr<serve::Engine>> engine =
      serve::Engine::start(*tiny_model().model, tiny_model().dir.tokenizer, tiny_model().dir.eos_token_ids(), config);
  PLM_CHECK(engine.ok()) << engine.status().message();
  return *std::move(engine);
}

CaptionItem item_for(const std::filesystem::path& path, int64_t index) {
  return {.index = index, .id = path.filename().string(), .path = path.string(), .prompt = std::nullopt,
          .type = media_type_of(path)};
}

// What `plm generate --video/--image PATH --prompt TEXT --num-frames 4 --max-new-tokens N` prints.
std::string solo_caption(const CaptionItem& item, const std::string& prompt, const data::MediaOptions& media) {
  const std::vector<std::string> paths = {item.path};
  const auto messages = item.type == MediaType::kImage ? data::single_turn_conversation(prompt, paths, {})
                                                       : data::single_turn_conversation(prompt, {}, paths);
  absl::StatusOr<serve::PreparedPrompt> p = serve::prepare_local_chat_prompt(messages, tiny_model().dir, media);
  PLM_CHECK(p.ok()) << p.status().message();
  const std::vector<int32_t> tokens =
      serve::testing::solo_tokens(*p, {.max_tokens = kMaxNewTokens, .sampling = {}, .stop = {}});
  return *tiny_model().dir.tokenizer.decode(tokens, {.skip_special_tokens = true});
}

absl::flat_hash_map<std::string, CaptionRecord> records_in(const std::filesystem::path& part) {
  absl::flat_hash_map<std::string, CaptionRecord> records;
  const absl::StatusOr<int64_t> torn = scan_part(part, false, [&](CaptionRecord&& r, const LineSpan&) {
    EXPECT_TRUE(records.emplace(r.id, r).second) << "a second line for " << r.id;
  });
  EXPECT_TRUE(torn.ok() && *torn == 0);
  return records;
}

CaptionJobConfig job_config() {
  CaptionJobConfig config;
  config.media.video_sampling = {.num_frames = 4};
  config.max_new_tokens = kMaxNewTokens;
  config.num_decode_threads = 2;
  config.max_in_flight = 6;
  config.tick_interval_s = 0.05;
  return config;
}

TEST(CaptionJob, CaptionsEqualSoloGenerationAndBadInputsBecomeErrorLines) {
  const auto dir = plm::testing::fresh_temp_dir();
  std::vector<CaptionItem> items;
  for (const auto& path : testing::write_test_videos(dir / "videos", 8)) items.push_back(item_for(path, items.size()));
  items.push_back(item_for(testing::copy_test_image(dir / "images"), items.size()));
  const testing::BadInputs bad = testing::write_bad_inputs(dir / "bad");
  for (const auto& path : {bad.corrupt, bad.empty, bad.text, bad.missing}) items.push_back(item_for(path, items.size()));
  items[2].prompt = "What changes between the frames?";

  const std::unique_ptr<serve::Engine> engine = start_engine(/*prefix_caching=*/true);
  const CaptionJobConfig config = job_config();
  CaptionJob job(*engine, tiny_model().dir, config);
  absl::StatusOr<std::unique_ptr<PartWriter>> part = PartWriter::open(dir / "out.jsonl.rank-0");
  ASSERT_TRUE(part.ok());
  int num_ticks = 0;
  const absl::StatusOr<CaptionCounters> counters = job.run(items, **part, [&](const CaptionCounters& c) {
    EXPECT_LE(c.items_done, c.items_total);
    ++num_ticks;
  });
  ASSERT_TRUE(counters.ok()) << counters.status();
  EXPECT_EQ(counters->items_total, 13);
  EXPECT_EQ(counters->items_done, 13);
  EXPECT_EQ(counters->errors, 4);
  EXPECT_GT(counters->engine_vision_us, 0);

  const auto records = records_in(dir / "out.jsonl.rank-0");
  ASSERT_EQ(records.size(), items.size());
  EXPECT_GT(records.at(items[8].id).frames, 1);  // the image's tiles (thumbnail + tiles)
  EXPECT_EQ(counters->frames, 8 * 4 + records.at(items[8].id).frames);
  for (size_t i = 0; i < 9; ++i) {
    const CaptionRecord& r = records.at(items[i].id);
    ASSERT_TRUE(r.ok()) << items[i].id << ": " << *r.error;
    EXPECT_EQ(r.caption, solo_caption(items[i], job.prompt_of(items[i]), config.media)) << items[i].id;
    EXPECT_EQ(r.path, items[i].path);
    EXPECT_EQ(r.completion_tokens, kMaxNewTokens);  // the random tiny model never says EOS this early
    EXPECT_GT(r.prompt_tokens, 0);
    EXPECT_GT(r.seconds, 0);
    EXPECT_TRUE(r.embedding.empty());
    if (items[i].type == MediaType::kVideo) {
      EXPECT_EQ(r.frames, 4);
    }
  }
  EXPECT_EQ(job.prompt_of(items[2]), "What changes between the frames?");
  EXPECT_EQ(job.prompt_of(items[0]), kDefaultVideoPrompt);
  EXPECT_EQ(job.prompt_of(items[8]), kDefaultImagePrompt);
  for (const auto& path : {bad.corrupt, bad.empty, bad.text, bad.missing}) {
    const CaptionRecord& r = records.at(path.filename().string());
    ASSERT_FALSE(r.ok()) << path;
    EXPECT_THAT(*r.error, ::testing::HasSubstr(path.filename().string()));
  }
}

TEST(CaptionJob, SavesTheMeanOfEachItemsVisionRows) {
  const auto dir = plm::testing::fresh_temp_dir();
  std::vector<CaptionItem> items;
  for (const auto& path : testing::write_test_videos(dir, 3)) items.push_back(item_for(path, items.size()));
  const std::unique_ptr<serve::Engine> engine = start_engine(/*prefix_caching=*/false);
  CaptionJobConfig config = job_config();
  config.save_embeddings = true;
  CaptionJob job(*engine, tiny_model().dir, config);
  absl::StatusOr<std::unique_ptr<PartWriter>> part = PartWriter::open(dir / "out.jsonl.rank-0");
  ASSERT_TRUE(part.ok());
  ASSERT_TRUE(job.run(items, **part, [](const CaptionCounters&) {}).ok());
  const auto records = records_in(dir / "out.jsonl.rank-0");
  for (const CaptionItem& item : items) {
    const auto messages = data::single_turn_conversation(kDefaultVideoPrompt, {}, {item.path});
    absl::StatusOr<serve::PreparedPrompt> p = serve::prepare_local_chat_prompt(messages, tiny_model().dir, config.media);
    ASSERT_TRUE(p.ok());
    const OwnedTensor rows = tiny_model().model->encode_media(p->videos.pixels);
    const int64_t n = rows.size(0), h = rows.size(1);
    const std::vector<float>& got = records.at(item.id).embedding;
    ASSERT_EQ(static_cast<int64_t>(got.size()), h) << item.id;
    for (int64_t c = 0; c < h; ++c) {
      double mean = 0;
      for (int64_t r = 0; r < n; ++r) mean += rows.data_as<float>()[r * h + c];
      EXPECT_NEAR(got[c], mean / n, 1e-5) << item.id << " " << c;
    }
  }
}

}  // namespace
}  // namespace plm::caption
