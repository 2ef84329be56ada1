// The engine on the tiny cls_tied model: 64 concurrent mixed requests (text, image, video, data: URLs, different
// lengths, greedy and seeded sampling, stop strings) each equal their solo result through model::generate (what
// `plm generate` runs) while continuous batching admits them mid-run with chunked prefill and a vision budget, on
// the dense cache, the paged cache, and a paged pool so small that sequences are preempted and recompute;
// cancelling frees the sequence's KV blocks; repeated images and overlapping video frames hit the encoder cache;
// a repeated system prompt and a repeated image prompt hit the prefix cache (a changed tile does not).
#include "serve/engine.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "serve/prompt_preparer.h"
#include "tests/serve/serve_fixture.h"

namespace plm::serve {
namespace {

using testing::Collector;
using testing::tiny_model;

class EngineTest : public ::testing::Test {
 protected:
  void start(const EngineConfig& config) {
    absl::StatusOr<std::unique_ptr<Engine>> engine =
        Engine::start(*tiny_model().model, tiny_model().dir.tokenizer, tiny_model().dir.eos_token_ids(), config, &metrics_);
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = std::move(*engine);
  }

  static EngineConfig small_config() {
    EngineConfig c;
    c.scheduler = {.max_num_seqs = 16, .max_batch_tokens = 96, .max_media_items_per_step = 3, .max_bypass = 4};
    c.max_model_len = 512;
    c.kv.bytes = int64_t{16} << 20;
    c.encoder_cache_bytes = int64_t{1} << 20;
    return c;
  }

  PreparedPrompt prepare(const std::vector<data::ChatMessage>& messages, const data::MediaOptions& media = {}) {
    absl::StatusOr<PreparedPrompt> p = prepare_chat_prompt(messages, tiny_model().dir, policy_, media);
    PLM_CHECK(p.ok()) << p.status().message();
    return std::move(*p);
  }

  // Waits until the engine holds no sequence (cancellation is asynchronous).
  bool wait_until_idle() {
    for (int i = 0; i < 2000; ++i) {
      const EngineStats s = engine_->stats();
      if (s.num_running == 0 && s.num_waiting == 0 && s.kv.num_sequences == 0) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }

  Metrics metrics_;
  MediaPolicy policy_ = testing::test_media_policy();
  std::unique_ptr<Engine> engine_;
};

constexpr int kMixedRequests = 64;

PreparedPrompt copy_of(const PreparedPrompt& p) {
  PreparedPrompt out;
  out.ids = p.ids;
  for (auto [from, to] : {std::pair{&p.images, &out.images}, std::pair{&p.videos, &out.videos}}) {
    to->keys = from->keys;
    if (from->pixels.view().defined()) {
      to->pixels = OwnedTensor(from->pixels.shape(), from->pixels.dtype());
      copy_tensor(to->pixels.view(), from->pixels.view());
    }
  }
  return out;
}

// 64 requests over 9 prompts (text, images, videos, data: URLs, different lengths), greedy and seeded, some
// with a stop string, and their solo results through model::generate: built once per process.
struct MixedCase {
  size_t prompt;
  GenerationParams params;
  std::vector<int32_t> expected_tokens;
  std::string expected_text;  // for stop-string cases
};
struct MixedWorkload {
  std::vector<PreparedPrompt> prompts;
  std::vector<MixedCase> cases;
  int64_t longest = 0;  // prompt + max_tokens of the longest request
};

const MixedWorkload& mixed_workload() {
  static const MixedWorkload* workload = [] {
    auto w = new MixedWorkload;
    const MediaPolicy policy = testing::test_media_policy();
    const std::string image = "image_150x100.png", video = "video_64x48_4f.mp4";
    std::string long_text;
    for (int i = 0; i < 12; ++i) long_text += "Tell me more about the picture and the colours in it. ";
    const std::vector<std::vector<data::ChatMessage>> conversations = {
        testing::user_turn("Hi"),
        testing::user_turn("Describe the weather in one word."),
        testing::user_turn(long_text),
        testing::user_turn("Describe this image.", {image}),
        testing::user_turn("What is in the picture?", {testing::data_url(testing::inputs_dir() / image, "image/png")}),
        testing::user_turn("Compare these two images.", {image, image}),
        testing::user_turn("What is happening in this video?", {}, {video}),
        testing::user_turn(long_text, {image}, {video}),
        testing::user_turn("Count the frames.", {}, {testing::data_url(testing::inputs_dir() / video, "video/mp4")}),
    };
    for (const auto& c : conversations) {
      absl::StatusOr<PreparedPrompt> p = prepare_chat_prompt(c, tiny_model().dir, policy, {});
      PLM_CHECK(p.ok()) << p.status().message();
      w->prompts.push_back(std::move(*p));
    }
    const data::Tokenizer& tokenizer = tiny_model().dir.tokenizer;
    for (int i = 0; i < kMixedRequests; ++i) {
      MixedCase c{.prompt = static_cast<size_t>(i) % w->prompts.size(), .params = {}, .expected_tokens = {},
                  .expected_text = {}};
      c.params.max_tokens = 2 + (i * 7) % 23;
      if (i % 5 == 3) c.params.sampling = {.temperature = 0.9f, .top_k = 0, .top_p = 0.95f, .seed = 1000u + i};
      c.expected_tokens = testing::solo_tokens(w->prompts[c.prompt], c.params);
      if (i % 7 == 2 && c.expected_tokens.size() >= 4) {
        // A stop string: the text of one generated token from the middle of the solo reply.
        const absl::StatusOr<std::string> piece = tokenizer.decode(
            std::vector<int32_t>{c.expected_tokens[c.expected_tokens.size() / 2]}, {.skip_special_tokens = true});
        const absl::StatusOr<std::string> full = tokenizer.decode(c.expected_tokens, {.skip_special_tokens = true});
        if (piece.ok() && full.ok() && !piece->empty()) {
          c.params.stop = {*piece};
          c.expected_text = full->substr(0, full->find(*piece));
        }
      }
      w->longest = std::max(w->longest, static_cast<int64_t>(w->prompts[c.prompt].ids.size()) + c.params.max_tokens);
      w->cases.push_back(std::move(c));
    }
    return w;
  }();
  return *workload;
}

// The KV cache the mixed workload runs on.
enum class MixedKv {
  kDense,
  kPaged,          // a pool that holds every request at once, with prefix caching
  kPagedNoPrefix,  // the same without prefix caching
  kPagedTight,     // a pool of twice the longest request: sequences are preempted and recompute
};

std::string mixed_kv_name(MixedKv kv) {
  switch (kv) {
    case MixedKv::kDense: return "Dense";
    case MixedKv::kPaged: return "Paged";
    case MixedKv::kPagedNoPrefix: return "PagedWithoutPrefixCache";
    case MixedKv::kPagedTight: return "PagedTightPoolPreempts";
  }
  return {};
}

class MixedRequests : public EngineTest, public ::testing::WithParamInterface<MixedKv> {};

TEST_P(MixedRequests, ConcurrentRequestsEqualTheirSoloResults) {
  const MixedWorkload& w = mixed_workload();
  EngineConfig config = small_config();
  const model::PlmModel& model = *tiny_model().model;
  switch (GetParam()) {
    case MixedKv::kDense: config.kv.kind = KvCacheKind::kDense; break;
    case MixedKv::kPaged: break;
    case MixedKv::kPagedNoPrefix: config.kv.prefix_caching = false; break;
    case MixedKv::kPagedTight: {
      const int64_t blocks = 2 * (w.longest / config.kv.block_tokens + 1);
      config.kv.bytes = blocks * static_cast<int64_t>(model::PagedKvCache::block_bytes(
                                     model.kv_layout(), config.kv.block_tokens, model.dtype()));
      break;
    }
  }
  start(config);

  std::vector<Collector> collectors(kMixedRequests);
  std::vector<std::thread> clients;
  constexpr int kClients = 4;
  for (int t = 0; t < kClients; ++t) {
    clients.emplace_back([&, t] {
      for (int i = t; i < kMixedRequests; i += kClients) {
        EngineRequest r{.id = "req-" + std::to_string(i), .prompt = copy_of(w.prompts[w.cases[i].prompt]),
                        .params = w.cases[i].params, .on_update = collectors[i].callback(), .arrival = Clock::now()};
        const absl::Status s = engine_->submit(std::move(r));
        EXPECT_TRUE(s.ok()) << s;
      }
    });
  }
  for (std::thread& t : clients) t.join();

  const data::Tokenizer& tokenizer = tiny_model().dir.tokenizer;
  for (int i = 0; i < kMixedRequests; ++i) {
    const std::optional<RequestUpdate> final = collectors[i].wait();
    ASSERT_TRUE(final.has_value()) << "request " << i << " did not finish";
    const MixedCase& c = w.cases[i];
    ASSERT_TRUE(final->finish == FinishReason::kStop || final->finish == FinishReason::kLength) << i;
    if (!c.params.stop.empty()) {
      EXPECT_EQ(collectors[i].text(), c.expected_text) << "request " << i << " (stop string)";
      EXPECT_EQ(*final->finish, FinishReason::kStop) << i;
      continue;
    }
    EXPECT_EQ(collectors[i].tokens(), c.expected_tokens) << "request " << i << " (prompt " << c.prompt << ")";
    const absl::StatusOr<std::string> text = tokenizer.decode(c.expected_tokens, {.skip_special_tokens = true});
    ASSERT_TRUE(text.ok());
    EXPECT_EQ(collectors[i].text(), *text) << i;
    EXPECT_EQ(final->usage.prompt_tokens, static_cast<int64_t>(w.prompts[c.prompt].ids.size()));
    EXPECT_EQ(final->usage.completion_tokens, static_cast<int64_t>(c.expected_tokens.size()));
    const bool eos = static_cast<int64_t>(c.expected_tokens.size()) < c.params.max_tokens;
    EXPECT_EQ(*final->finish, eos ? FinishReason::kStop : FinishReason::kLength) << i;
  }
  ASSERT_TRUE(wait_until_idle());
  const EngineStats stats = engine_->stats();
  EXPECT_EQ(stats.requests_finished, kMixedRequests);
  EXPECT_GT(stats.encoder_cache.hits, 0);
  // Batching happened: far fewer steps than the tokens generated.
  EXPECT_LT(stats.num_steps, stats.generated_tokens / 2);
  EXPECT_EQ(stats.kv.blocks_used, 0);
  EXPECT_EQ(stats.kv.blocks_free + stats.kv.blocks_cached, stats.kv.num_blocks);
  if (GetParam() == MixedKv::kPagedTight) {
    EXPECT_GT(stats.num_preemptions, 0) << "the pool of " << stats.kv.num_blocks << " blocks never ran out";
  } else {
    EXPECT_EQ(stats.num_preemptions, 0);
  }
  // Nine prompts for 64 requests: with a prefix cache most prompt blocks are found.
  const PrefixCacheCounters& prefix = stats.kv.prefix_cache;
  if (GetParam() == MixedKv::kPaged || GetParam() == MixedKv::kPagedTight) {
    EXPECT_GT(prefix.hit_tokens, prefix.queried_tokens / 2);
  } else {
    EXPECT_EQ(prefix.hit_tokens, 0);
  }
  std::printf("[%s] %lld steps, %lld preemptions, %lld prompt tokens computed, prefix cache hits %lld of %lld tokens, "
              "%lld blocks\n",
              mixed_kv_name(GetParam()).c_str(), static_cast<long long>(stats.num_steps),
              static_cast<long long>(stats.num_preemptions), static_cast<long long>(stats.prompt_tokens_computed),
              static_cast<long long>(prefix.hit_tokens), static_cast<long long>(prefix.queried_tokens),
              static_cast<long long>(stats.kv.num_blocks));
}

INSTANTIATE_TEST_SUITE_P(Kv, MixedRequests,
                         ::testing::Values(MixedKv::kDense, MixedKv::kPaged, MixedKv::kPagedNoPrefix,
                                           MixedKv::kPagedTight),
                         [](const ::testing::TestParamInfo<MixedKv>& info) { return mixed_kv_name(info.param); });

TEST_F(EngineTest, CancelFreesTheSequenceRunningOrWaiting) {
  EngineConfig config = small_config();
  config.scheduler.max_num_seqs = 1;
  start(config);
  Collector running, waiting;
  GenerationParams long_reply{.max_tokens = 400, .sampling = {}, .stop = {}};
  long_reply.sampling.temperature = 0;  // greedy, EOS may still end it: the test only needs it to start
  ASSERT_TRUE(engine_->submit({.id = "running", .prompt = prepare(testing::user_turn("Hi")), .params = long_reply,
                               .on_update = running.callback(), .arrival = Clock::now()}).ok());
  ASSERT_TRUE(engine_->submit({.id = "waiting", .prompt = prepare(testing::user_turn("Hello")), .params = long_reply,
                               .on_update = waiting.callback(), .arrival = Clock::now()}).ok());
  engine_->cancel("waiting");
  const std::optional<RequestUpdate> w = waiting.wait();
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(*w->finish, FinishReason::kCancelled);
  EXPECT_EQ(w->usage.completion_tokens, 0);
  engine_->cancel("running");
  const std::optional<RequestUpdate> r = running.wait();
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(*r->finish == FinishReason::kCancelled || *r->finish == FinishReason::kStop);
  EXPECT_TRUE(wait_until_idle());
  const EngineStats stats = engine_->stats();
  EXPECT_EQ(stats.kv.reserved_tokens, 0);
  EXPECT_EQ(stats.kv.blocks_used, 0);
  EXPECT_EQ(stats.kv.blocks_free + stats.kv.blocks_cached, stats.kv.num_blocks);
  EXPECT_GE(stats.requests_cancelled, 1);
  // The freed slot takes the next request.
  Collector next;
  ASSERT_TRUE(engine_->submit({.id = "next", .prompt = prepare(testing::user_turn("Hi")),
                               .params = {.max_tokens = 3, .sampling = {}, .stop = {}}, .on_update = next.callback(),
                               .arrival = Clock::now()}).ok());
  ASSERT_TRUE(next.wait().has_value());
}

TEST_F(EngineTest, RepeatedImageAndOverlappingVideoFramesHitTheEncoderCache) {
  EngineConfig config = small_config();
  config.kv.prefix_caching = false;  // else the repeated prompts' tiles are in cached KV blocks and never looked up
  start(config);
  const GenerationParams params{.max_tokens = 2, .sampling = {}, .stop = {}};
  const auto run = [&](const std::string& id, PreparedPrompt prompt) {
    Collector c;
    EXPECT_TRUE(engine_->submit({.id = id, .prompt = std::move(prompt), .params = params, .on_update = c.callback(),
                                 .arrival = Clock::now()}).ok());
    const std::optional<RequestUpdate> u = c.wait();
    PLM_CHECK(u.has_value());
    return u->usage;
  };
  const PreparedPrompt image = prepare(testing::user_turn("Describe this image.", {"image_150x100.png"}));
  const int64_t tiles = image.images.count();
  const Usage first = run("image-1", copy_of(image));
  EXPECT_EQ(first.encoded_media_items + first.cached_media_items, tiles);
  const int64_t encoded = engine_->stats().media_items_encoded;
  // The same image again (as a data: URL this time): every tile from the cache, no vision tower.
  const Usage second = run("image-2", prepare(testing::user_turn(
      "Describe this image.", {testing::data_url(testing::inputs_dir() / "image_150x100.png", "image/png")})));
  EXPECT_EQ(second.cached_media_items, tiles);
  EXPECT_EQ(second.encoded_media_items, 0);
  EXPECT_EQ(engine_->stats().media_items_encoded, encoded);

  // 4 frames, then 2 of them (frames 0 and 2): the second request's frames are all cached.
  const Usage all_frames = run("video-4", prepare(testing::user_turn("What happens?", {}, {"video_64x48_4f.mp4"})));
  EXPECT_EQ(all_frames.encoded_media_items + all_frames.cached_media_items, 4);
  data::MediaOptions two_frames;
  two_frames.video_sampling = {.num_frames = 2, .fps = std::nullopt, .at_most = false};
  const Usage window = run("video-2", prepare(testing::user_turn("What happens?", {}, {"video_64x48_4f.mp4"}), two_frames));
  EXPECT_EQ(window.cached_media_items, 2);
  EXPECT_EQ(window.encoded_media_items, 0);
  const EngineStats stats = engine_->stats();
  EXPECT_GE(stats.encoder_cache.hits, tiles + 2);
}

// Runs one request to its end; returns its final update and checks its tokens against its solo run.
RequestUpdate run_and_compare(Engine& engine, const std::string& id, const PreparedPrompt& prompt,
                              const GenerationParams& params) {
  Collector c;
  EXPECT_TRUE(engine.submit({.id = id, .prompt = copy_of(prompt), .params = params, .on_update = c.callback(),
                             .arrival = Clock::now()}).ok());
  const std::optional<RequestUpdate> u = c.wait();
  PLM_CHECK(u.has_value()) << id << " did not finish";
  EXPECT_EQ(c.tokens(), testing::solo_tokens(prompt, params)) << id;
  return *u;
}

// Whole blocks before the last token: what a repeated prompt finds in the prefix cache.
int64_t cacheable(const PreparedPrompt& p, int64_t block_tokens) {
  return (static_cast<int64_t>(p.ids.size()) - 1) / block_tokens * block_tokens;
}

TEST_F(EngineTest, RepeatedSystemPromptHitsThePrefixCache) {
  start(small_config());
  const int64_t block = small_config().kv.block_tokens;
  std::string system;
  for (int i = 0; i < 8; ++i) system += "You are a careful assistant who answers briefly and politely. ";
  const auto with_system = [&](const std::string& question) {
    std::vector<data::ChatMessage> messages = {
        {.role = "system", .parts = {{.type = data::ContentPart::Type::kText, .text = system, .url = {}}}}};
    for (data::ChatMessage& m : testing::user_turn(question)) messages.push_back(std::move(m));
    return prepare(messages);
  };
  const PreparedPrompt first = with_system("What is two plus two?"), second = with_system("Name a colour.");
  const GenerationParams params{.max_tokens = 6, .sampling = {}, .stop = {}};
  // The prompts agree up to the question.
  int64_t common = 0;
  while (first.ids[common] == second.ids[common]) ++common;
  ASSERT_GT(common, 4 * block);

  const RequestUpdate a = run_and_compare(*engine_, "first", first, params);
  EXPECT_EQ(a.usage.cached_prompt_tokens, 0);
  const PrefixCacheCounters before = engine_->stats().kv.prefix_cache;
  const int64_t computed_before = engine_->stats().prompt_tokens_computed;
  const RequestUpdate b = run_and_compare(*engine_, "second", second, params);
  EXPECT_EQ(b.usage.cached_prompt_tokens, common / block * block);
  EXPECT_EQ(engine_->stats().prompt_tokens_computed - computed_before,
            static_cast<int64_t>(second.ids.size()) - b.usage.cached_prompt_tokens);
  // The same prompt again: every block but the one with its last token.
  const RequestUpdate again = run_and_compare(*engine_, "second-again", second, params);
  EXPECT_EQ(again.usage.cached_prompt_tokens, cacheable(second, block));
  ASSERT_TRUE(wait_until_idle());
  const EngineStats stats = engine_->stats();
  EXPECT_EQ(stats.kv.prefix_cache.hit_tokens - before.hit_tokens,
            b.usage.cached_prompt_tokens + again.usage.cached_prompt_tokens);
  EXPECT_EQ(stats.kv.prefix_cache.queried_tokens - before.queried_tokens,
            2 * static_cast<int64_t>(second.ids.size()));
  EXPECT_EQ(stats.kv.blocks_used, 0);
  EXPECT_GT(stats.kv.blocks_cached, 0);
}

// The same image prompt hits; the same prompt ids with one tile's pixels changed (so its MediaKey differs) only
// share the blocks before that tile's first placeholder, and both reply as they do alone.
TEST_F(EngineTest, RepeatedImagePromptHitsThePrefixCacheAndAnotherImageDoesNot) {
  start(small_config());
  const int64_t block = small_config().kv.block_tokens;
  const PreparedPrompt image = prepare(testing::user_turn("Describe this image.", {"image_150x100.png"}));
  const int64_t tiles = image.images.count();
  ASSERT_GE(tiles, 2);
  const GenerationParams params{.max_tokens = 6, .sampling = {}, .stop = {}};
  const RequestUpdate first = run_and_compare(*engine_, "image-1", image, params);
  EXPECT_EQ(first.usage.cached_prompt_tokens, 0);

  const int64_t encoded = engine_->stats().media_items_encoded;
  const RequestUpdate second = run_and_compare(*engine_, "image-2", image, params);
  EXPECT_EQ(second.usage.cached_prompt_tokens, cacheable(image, block));
  EXPECT_EQ(second.usage.cached_media_items, tiles);
  EXPECT_EQ(second.usage.encoded_media_items, 0);
  EXPECT_EQ(engine_->stats().media_items_encoded, encoded);

  // The last tile differs: same ids, another key for it.
  PreparedPrompt other = copy_of(image);
  const Tensor last_tile = other.images.pixels.view().select(0, tiles - 1);
  float* pixels = last_tile.data_as<float>();
  for (int64_t i = 0; i < last_tile.numel(); ++i) pixels[i] = -pixels[i];
  other.images.keys = media_keys(other.images.pixels);
  ASSERT_EQ(other.images.keys[0], image.images.keys[0]);
  ASSERT_NE(other.images.keys[tiles - 1], image.images.keys[tiles - 1]);
  const int32_t image_token = tiny_model().model->config().image_token_id;
  const int64_t per_tile = tiny_model().model->config().tokens_per_tile();
  const int64_t first_placeholder = std::find(image.ids.begin(), image.ids.end(), image_token) - image.ids.begin();
  const int64_t changed = first_placeholder + (tiles - 1) * per_tile;  // the first placeholder of the last tile
  const RequestUpdate third = run_and_compare(*engine_, "image-other", other, params);
  EXPECT_EQ(third.usage.cached_prompt_tokens, changed / block * block);
  EXPECT_EQ(third.usage.encoded_media_items, 1);
}

TEST_F(EngineTest, RejectsRequestsBeyondTheContextOrWithBadMedia) {
  start(small_config());
  Collector c;
  const absl::Status too_long = engine_->submit({.id = "long", .prompt = prepare(testing::user_turn("Hi")),
                                                 .params = {.max_tokens = 10'000, .sampling = {}, .stop = {}},
                                                 .on_update = c.callback(), .arrival = Clock::now()});
  EXPECT_EQ(too_long.code(), absl::StatusCode::kOutOfRange) << too_long;
  EXPECT_THAT(std::string(too_long.message()), ::testing::HasSubstr("context is 512 tokens"));
  PreparedPrompt no_pixels = prepare(testing::user_turn("Describe this image.", {"image_150x100.png"}));
  no_pixels.images = {};
  const absl::Status bad = engine_->submit({.id = "bad", .prompt = std::move(no_pixels),
                                            .params = {.max_tokens = 4, .sampling = {}, .stop = {}},
                                            .on_update = c.callback(), .arrival = Clock::now()});
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument) << bad;
  EXPECT_EQ(c.num_updates(), 0);
}


TEST_F(EngineTest, PreparerWorksOnItsPoolAndMatchesThePlmGenerateInputs) {
  PromptPreparer preparer(tiny_model().dir, policy_, {}, 2);
  std::mutex mutex;
  std::condition_variable done;
  std::optional<absl::StatusOr<PreparedPrompt>> result;
  std::thread::id worker;
  const auto messages = testing::user_turn("Describe this image.", {"image_150x100.png"});
  preparer.prepare_chat(messages, [&](absl::StatusOr<PreparedPrompt> p) {
    const std::lock_guard lock(mutex);
    worker = std::this_thread::get_id();
    result = std::move(p);
    done.notify_all();
  });
  std::unique_lock lock(mutex);
  ASSERT_TRUE(done.wait_for(lock, std::chrono::seconds(60), [&] { return result.has_value(); }));
  ASSERT_TRUE(result->ok()) << result->status();
  EXPECT_NE(worker, std::this_thread::get_id());
  // The inputs `plm generate --image ... --prompt ...` builds (data::build_prompt with the file's path).
  std::vector<data::ChatMessage> direct = testing::user_turn("Describe this image.",
                                                             {(testing::inputs_dir() / "image_150x100.png").string()});
  const absl::StatusOr<data::PromptInputs> reference =
      data::build_prompt(direct, true, tiny_model().dir.tokenizer, tiny_model().dir.processor,
                         tiny_model().dir.config.tokens_per_tile());
  ASSERT_TRUE(reference.ok());
  EXPECT_EQ((*result)->ids, reference->ids);
  EXPECT_EQ((*result)->images.count(), reference->image_pixels.size(0));
  EXPECT_EQ((*result)->images.keys, media_keys(reference->image_pixels));
}

// The opt-in pooled embedding: the mean of the request's post-projector rows, each frame once, whether the step
// encoded it, found it in the encoder cache or resumed it across chunks; refused with prefix caching on.
TEST_F(EngineTest, PooledMediaEmbeddingIsTheMeanOfTheRequestsRows) {
  EngineConfig config = small_config();
  config.scheduler.max_num_seqs = 4;
  config.scheduler.max_batch_tokens = 7;  // chunks end inside frames (4 rows each): pinned items resume
  config.kv.prefix_caching = false;
  start(config);
  ASSERT_NE(engine_, nullptr);
  const PreparedPrompt video = prepare(testing::user_turn("What happens?", {}, {"video_64x48_4f.mp4"}));
  const OwnedTensor rows = tiny_model().model->encode_media(video.videos.pixels);  // (4 * tokens_per_tile, H)
  const OwnedTensor host = to_device(rows.view(), Device::cpu());
  ASSERT_EQ(host.dtype(), DType::kF32);
  std::vector<double> expected(host.size(1), 0.0);
  for (int64_t r = 0; r < host.size(0); ++r) {
    for (int64_t c = 0; c < host.size(1); ++c) expected[c] += host.data_as<float>()[r * host.size(1) + c] / host.size(0);
  }
  const GenerationParams params{.max_tokens = 2, .sampling = {}, .stop = {}};
  for (const std::string id : {"encoded", "cached"}) {  // the second finds every frame in the encoder cache
    Collector c;
    ASSERT_TRUE(engine_->submit({.id = id, .prompt = copy_of(video), .params = params, .on_update = c.callback(),
                                 .arrival = Clock::now(), .pool_media_embeddings = true}).ok());
    const std::optional<RequestUpdate> u = c.wait();
    ASSERT_TRUE(u.has_value());
    ASSERT_EQ(u->media_embedding.size(), expected.size()) << id;
    for (size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(u->media_embedding[i], expected[i], 1e-5) << id << " " << i;
  }
  EXPECT_GE(engine_->stats().encoder_cache.hits, 4);

  Collector plain;
  ASSERT_TRUE(engine_->submit({.id = "plain", .prompt = copy_of(video), .params = params, .on_update = plain.callback(),
                               .arrival = Clock::now()}).ok());
  ASSERT_TRUE(plain.wait().has_value());
  EXPECT_TRUE(plain.wait()->media_embedding.empty());

  start(small_config());  // prefix caching on
  Collector refused;
  const absl::Status s = engine_->submit({.id = "refused", .prompt = copy_of(video), .params = params,
                                          .on_update = refused.callback(), .arrival = Clock::now(),
                                          .pool_media_embeddings = true});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("need prefix caching off"));
}

}  // namespace
}  // namespace plm::serve
