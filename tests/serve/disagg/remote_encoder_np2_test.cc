// A front and an encoder rank as threads over in-process communicators (the fake the MPI run mirrors): the rows
// a RemoteEncoder hands back equal the model's own encode_media, the encoder's cache answers a repeated image,
// and an engine over a language-only model given those rows replies exactly as `plm generate` does.
#include <gtest/gtest.h>

#include <cstring>
#include <future>
#include <thread>

#include "distributed/local_communicator.h"
#include "serve/disagg/encoder_worker.h"
#include "serve/disagg/remote_encoder.h"
#include "serve/engine.h"
#include "serve/prompt_preparer.h"
#include "tests/serve/serve_fixture.h"

namespace plm::serve::disagg {
namespace {

using serve::testing::prepare_turn;
using serve::testing::tiny_model;


bool same_bytes(Tensor a, Tensor b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.data(), b.data(), a.nbytes()) == 0;
}

TEST(RemoteEncoder, RowsEqualLocalEncodingAndTheEngineRepliesAsGenerate_np2) {
  const model::PlmModel& full = *tiny_model().model;
  // Rank 0: the front; rank 1: the encoder (holding the whole model is fine: it only encodes).
  std::vector<std::unique_ptr<distributed::Communicator>> jobs = distributed::make_local_communicators(2);
  std::vector<std::unique_ptr<distributed::Communicator>> replies = distributed::make_local_communicators(2);
  std::vector<std::unique_ptr<distributed::Communicator>> heartbeat = distributed::make_local_communicators(2);
  std::thread encoder_rank([&] {
    const absl::Status s = run_encoder_worker(
        full, {.jobs = jobs[1].get(), .replies = replies[1].get(), .data = replies[1].get(), .heartbeat = heartbeat[1].get()},
        {.front_ranks = {0}, .cache_bytes = int64_t{8} << 20, .max_items_per_batch = 4});
    EXPECT_TRUE(s.ok()) << s;
  });
  model::ModelParallel language;
  language.part = model::ModelPart::kLanguage;
  absl::StatusOr<std::unique_ptr<model::PlmModel>> decoder =
      model::PlmModel::load((serve::testing::models_dir() / "cls_tied").string(), Device::cpu(), language);
  ASSERT_TRUE(decoder.ok()) << decoder.status();
  EXPECT_FALSE((*decoder)->has_vision());
  {
    RemoteEncoder remote({.encoder_ranks = {1},
                          .max_in_flight_bytes = 1,  // one job at a time: backpressure on every request
                          .rows_per_item = full.config().tokens_per_tile(),
                          .hidden = full.config().text.hidden_size,
                          .dtype = full.dtype(),
                          .device = Device::cpu()},
                         {.jobs = jobs[0].get(), .replies = replies[0].get(), .data = replies[0].get(),
                          .heartbeat = heartbeat[0].get()});
    const std::vector<data::ChatMessage> turn =
        serve::testing::user_turn("Describe this image and video.", {"image_150x100.png"}, {"video_64x48_4f.mp4"});
    const PreparedPrompt local = prepare_turn(turn);
    std::vector<std::future<absl::StatusOr<PreparedPrompt>>> results;
    for (int i = 0; i < 3; ++i) {  // the same media three times: encoded once
      auto promise = std::make_shared<std::promise<absl::StatusOr<PreparedPrompt>>>();
      results.push_back(promise->get_future());
      remote.encode(prepare_turn(turn), [promise](absl::StatusOr<PreparedPrompt> p) { promise->set_value(std::move(p)); });
    }
    std::vector<PreparedPrompt> encoded;
    for (auto& r : results) {
      absl::StatusOr<PreparedPrompt> p = r.get();
      ASSERT_TRUE(p.ok()) << p.status();
      encoded.push_back(std::move(*p));
    }
    for (int kind = 0; kind < 2; ++kind) {
      const MediaTiles& want = kind == 0 ? local.images : local.videos;
      const OwnedTensor rows = full.encode_media(want.pixels);
      for (const PreparedPrompt& p : encoded) {
        const MediaTiles& got = kind == 0 ? p.images : p.videos;
        ASSERT_EQ(static_cast<int64_t>(got.embeddings.size()), want.count());
        EXPECT_FALSE(got.pixels.view().defined());
        for (int64_t i = 0; i < want.count(); ++i) {
          EXPECT_TRUE(same_bytes(got.embeddings[i]->view(), full.tile_rows(rows, i))) << "kind " << kind << " item " << i;
        }
      }
    }
    const EncoderPoolStats stats = remote.stats();
    EXPECT_EQ(stats.jobs_done, 3);
    EXPECT_EQ(stats.encoded[0], local.images.count());  // the first request's tiles only: the rest were cache hits
    EXPECT_EQ(stats.encoded[1], local.videos.count());
    EXPECT_EQ(stats.embedding_bytes, 3 * (local.images.count() + local.videos.count()) * full.config().tokens_per_tile() *
                                         full.config().text.hidden_size * 4);
    EXPECT_EQ(stats.in_flight_bytes, 0);

    // The language-only engine takes the rows as they came and replies as `plm generate` on the whole model.
    EngineConfig config;
    config.max_model_len = 1024;
    config.kv.bytes = int64_t{16} << 20;
    absl::StatusOr<std::unique_ptr<Engine>> engine =
        Engine::start(**decoder, tiny_model().dir.tokenizer, tiny_model().dir.eos_token_ids(), config);
    ASSERT_TRUE(engine.ok()) << engine.status();
    GenerationParams params;
    params.max_tokens = 12;
    const std::vector<int32_t> expected = serve::testing::solo_tokens(local, params);
    serve::testing::Collector collector;
    ASSERT_TRUE((*engine)->submit({.id = "r", .prompt = std::move(encoded[0]), .params = params, .on_update = collector.callback()}).ok());
    const std::optional<RequestUpdate> last = collector.wait();
    ASSERT_TRUE(last.has_value());
    EXPECT_EQ(collector.tokens(), expected);
    EXPECT_EQ(last->usage.encoded_media_items, local.images.count() + local.videos.count());
    // Pixels without rows cannot go to a language-only engine.
    const absl::Status refused = (*engine)->submit({.id = "p", .prompt = prepare_turn(turn), .params = params, .on_update = collector.callback()});
    EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument) << refused;
    remote.stop();
  }
  encoder_rank.join();
}

}  // namespace
}  // namespace plm::serve::disagg
