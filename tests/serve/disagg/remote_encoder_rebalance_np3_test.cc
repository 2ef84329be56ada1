// `--rebalance`'s encoder side with a front and two encoder ranks as threads over in-process communicators: a
// front retires encoder 1 (its worker ends once it may and the front's stop came after the jobs) and joins encoder
// 2, which started knowing no front; the requests that follow go to encoder 2 and get the same rows. Heartbeats
// follow the moves: the retired encoder, gone, is not taken for dead, nor is the front by the joined encoder.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <mutex>
#include <string>
#include <thread>

#include "distributed/local_communicator.h"
#include "serve/disagg/encoder_worker.h"
#include "serve/disagg/remote_encoder.h"
#include "tests/serve/serve_fixture.h"

namespace plm::serve::disagg {
namespace {

using serve::testing::tiny_model;

PreparedPrompt prepare(const std::vector<data::ChatMessage>& messages) {
  absl::StatusOr<PreparedPrompt> p = prepare_chat_prompt(messages, tiny_model().dir, serve::testing::test_media_policy(), {});
  PLM_CHECK(p.ok()) << p.status().message();
  return std::move(*p);
}

PreparedPrompt encode(RemoteEncoder& remote, PreparedPrompt prompt) {
  std::promise<absl::StatusOr<PreparedPrompt>> promise;
  remote.encode(std::move(prompt), [&](absl::StatusOr<PreparedPrompt> p) { promise.set_value(std::move(p)); });
  absl::StatusOr<PreparedPrompt> p = promise.get_future().get();
  PLM_CHECK(p.ok()) << p.status().message();
  return std::move(*p);
}

TEST(RemoteEncoder, RetiresOneEncoderAndJoinsAnother_np3) {
  const model::PlmModel& full = *tiny_model().model;
  std::vector<std::unique_ptr<distributed::Communicator>> jobs = distributed::make_local_communicators(3);
  std::vector<std::unique_ptr<distributed::Communicator>> replies = distributed::make_local_communicators(3);
  std::vector<std::unique_ptr<distributed::Communicator>> heartbeat = distributed::make_local_communicators(3);
  std::array<std::atomic<bool>, 3> may_exit{};
  constexpr double kPeerTimeoutS = 2;
  std::mutex log_mutex;
  std::vector<std::string> lines;
  const auto log = [&](const std::string& line) {
    const std::lock_guard lock(log_mutex);
    lines.push_back(line);
  };
  // Encoder 1 knows the front from the start; encoder 2 knows no front until one joins.
  const auto run_encoder = [&](int rank, std::vector<int> fronts) {
    const absl::Status s = run_encoder_worker(
        full,
        {.jobs = jobs[rank].get(), .replies = replies[rank].get(), .data = replies[rank].get(),
         .heartbeat = heartbeat[rank].get()},
        {.front_ranks = std::move(fronts), .peer_timeout_s = kPeerTimeoutS, .log = log, .cache_bytes = int64_t{8} << 20,
         .max_items_per_batch = 4, .may_exit = [&, rank] { return may_exit[rank].load(); }});
    EXPECT_TRUE(s.ok()) << s;
  };
  std::thread encoder1([&] { run_encoder(1, {0}); });
  std::thread encoder2([&] { run_encoder(2, {}); });

  RemoteEncoder remote({.encoder_ranks = {1},
                        .rows_per_item = full.config().tokens_per_tile(),
                        .hidden = full.config().text.hidden_size,
                        .dtype = full.dtype(),
                        .device = Device::cpu(),
                        .peer_timeout_s = kPeerTimeoutS,
                        .log = log},
                       {.jobs = jobs[0].get(), .replies = replies[0].get(), .data = replies[0].get(),
                        .heartbeat = heartbeat[0].get()});
  const std::vector<data::ChatMessage> turn = serve::testing::user_turn("Describe.", {"image_150x100.png"}, {});
  const PreparedPrompt first = encode(remote, prepare(turn));
  ASSERT_EQ(remote.stats().encoders.size(), 1U);
  EXPECT_EQ(remote.stats().encoders[0].rank, 1);

  remote.add_encoder(2);
  remote.retire_encoder(1);
  may_exit[1] = true;
  encoder1.join();  // it heard the front's stop: nothing more will come to it, nor heartbeats from it
  // Past the timeout: neither the retired encoder nor the front (for encoder 2, which joined) counts as dead.
  std::this_thread::sleep_for(std::chrono::duration<double>(1.5 * kPeerTimeoutS));

  const PreparedPrompt second = encode(remote, prepare(turn));
  const EncoderPoolStats stats = remote.stats();
  ASSERT_EQ(stats.encoders.size(), 1U);
  EXPECT_EQ(stats.encoders[0].rank, 2);
  EXPECT_EQ(stats.encoded[0], 2 * first.images.count());  // encoder 2's cache was empty: it ran the tower
  ASSERT_EQ(second.images.embeddings.size(), first.images.embeddings.size());
  for (size_t i = 0; i < first.images.embeddings.size(); ++i) {
    const Tensor a = first.images.embeddings[i]->view(), b = second.images.embeddings[i]->view();
    EXPECT_TRUE(a.nbytes() == b.nbytes() && std::memcmp(a.data(), b.data(), a.nbytes()) == 0) << "tile " << i;
  }
  EXPECT_EQ(stats.jobs_failed, 0);
  EXPECT_EQ(stats.num_alive(), 1);
  remote.stop();
  may_exit[2] = true;
  encoder2.join();
  const std::lock_guard lock(log_mutex);
  EXPECT_TRUE(lines.empty()) << "first line: " << lines.front();
}

}  // namespace
}  // namespace plm::serve::disagg
