// Failure in disaggregated serving, over in-process communicators (the fake the MPI runs mirror; the kill tests
// under `mpirun --enable-recovery` are in tests/serve/plm_serve_e2e_test.cc). A rank that never runs plays a dead
// one: it sends no heartbeat and answers nothing. A front fails the jobs it gave a dead encoder with Unavailable
// and sends the rest to the live one; with no encoder left it fails every job and says so once; an encoder drops
// a dead front and ends when the other has stopped, or with Unavailable when every front is dead.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>

#include "distributed/local_communicator.h"
#include "serve/disagg/encoder_worker.h"
#include "serve/disagg/remote_encoder.h"
#include "tests/serve/serve_fixture.h"

namespace plm::serve::disagg {
namespace {

using ::testing::HasSubstr;
using serve::testing::prepare_turn;
using serve::testing::tiny_model;

constexpr double kPeerTimeoutS = 2;  // a live thread on a loaded machine still beats within it

// The groups of an n-rank job in one process.
struct Groups {
  explicit Groups(int n)
      : jobs(distributed::make_local_communicators(n)),
        replies(distributed::make_local_communicators(n)),
        heartbeat(distributed::make_local_communicators(n)) {}
  EncoderChannels channels(int rank) const {
    return {.jobs = jobs[rank].get(), .replies = replies[rank].get(), .data = replies[rank].get(),
            .heartbeat = heartbeat[rank].get()};
  }
  std::vector<std::unique_ptr<distributed::Communicator>> jobs, replies, heartbeat;
};

RemoteEncoderConfig front_config(std::vector<int> encoders) {
  const model::PlmModel& m = *tiny_model().model;
  return {.encoder_ranks = std::move(encoders),
          .rows_per_item = m.config().tokens_per_tile(),
          .hidden = m.config().text.hidden_size,
          .dtype = m.dtype(),
          .device = Device::cpu(),
          .peer_timeout_s = kPeerTimeoutS};
}

EncoderWorkerConfig worker_config(std::vector<int> fronts) {
  return {.front_ranks = std::move(fronts), .peer_timeout_s = kPeerTimeoutS, .cache_bytes = int64_t{8} << 20};
}

PreparedPrompt image_prompt() {
  return prepare_turn(serve::testing::user_turn("Describe this image.", {"image_150x100.png"}));
}

// encode() as a future.
std::future<absl::StatusOr<PreparedPrompt>> encode(RemoteEncoder& remote, PreparedPrompt prompt) {
  auto promise = std::make_shared<std::promise<absl::StatusOr<PreparedPrompt>>>();
  std::future<absl::StatusOr<PreparedPrompt>> result = promise->get_future();
  remote.encode(std::move(prompt), [promise](absl::StatusOr<PreparedPrompt> p) { promise->set_value(std::move(p)); });
  return result;
}

// Rank 0: a front; rank 1: an encoder; rank 2: an encoder that is dead from the start.
TEST(DisaggFailure, JobsOfADeadEncoderFailWithUnavailableAndTheRestGoToTheLiveOne_np3) {
  Groups groups(3);
  std::thread encoder_rank([&] {
    const absl::Status s = run_encoder_worker(*tiny_model().model, groups.channels(1), worker_config({0}));
    EXPECT_TRUE(s.ok()) << s;
  });
  std::vector<std::string> lines;
  std::mutex lines_mutex;
  std::atomic<int> pool_empty{0};
  RemoteEncoderConfig config = front_config({1, 2});
  config.log = [&](const std::string& line) {
    const std::lock_guard lock(lines_mutex);
    lines.push_back(line);
  };
  config.on_pool_empty = [&] { ++pool_empty; };
  {
    RemoteEncoder remote(config, groups.channels(0));
    // Equal loads go in turn: the first job to rank 1, the second to rank 2.
    std::future<absl::StatusOr<PreparedPrompt>> first = encode(remote, image_prompt());
    std::future<absl::StatusOr<PreparedPrompt>> second = encode(remote, image_prompt());
    const absl::StatusOr<PreparedPrompt> served = first.get();
    ASSERT_TRUE(served.ok()) << served.status();
    EXPECT_EQ(static_cast<int64_t>(served->images.embeddings.size()), served->images.count());
    const absl::StatusOr<PreparedPrompt> failed = second.get();  // after kPeerTimeoutS
    EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable) << failed.status();
    EXPECT_THAT(failed.status().message(), HasSubstr("encoder rank 2 stopped answering"));
    // Later jobs go to rank 1 only.
    for (int i = 0; i < 3; ++i) {
      const absl::StatusOr<PreparedPrompt> later = encode(remote, image_prompt()).get();
      EXPECT_TRUE(later.ok()) << later.status();
    }
    const EncoderPoolStats stats = remote.stats();
    EXPECT_TRUE(stats.encoders[0].alive);
    EXPECT_FALSE(stats.encoders[1].alive);
    EXPECT_EQ(stats.num_alive(), 1);
    EXPECT_EQ(stats.jobs_failed, 1);
    EXPECT_EQ(stats.jobs_done, 4);
    EXPECT_EQ(stats.in_flight_bytes, 0);
    remote.stop();
  }
  encoder_rank.join();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0], HasSubstr("front rank 0: encoder rank 2 stopped answering (no heartbeat for 2 s): its 1 "
                                  "requests in flight fail with 503; 1 of 2 encoder ranks left"));
  EXPECT_EQ(pool_empty.load(), 0);
}

// Rank 0: a front whose only encoder (rank 1) is dead.
TEST(DisaggFailure, WithNoEncoderLeftEveryJobFailsAndThePoolSaysItIsEmptyOnce_np2) {
  Groups groups(2);
  std::atomic<int> pool_empty{0};
  RemoteEncoderConfig config = front_config({1});
  config.on_pool_empty = [&] { ++pool_empty; };
  RemoteEncoder remote(config, groups.channels(0));
  const absl::StatusOr<PreparedPrompt> held = encode(remote, image_prompt()).get();
  EXPECT_THAT(held.status().message(), HasSubstr("encoder rank 1 stopped answering"));
  const absl::StatusOr<PreparedPrompt> later = encode(remote, image_prompt()).get();
  EXPECT_EQ(later.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(later.status().message(), HasSubstr("no encoder rank is left"));
  EXPECT_EQ(pool_empty.load(), 1);
  EXPECT_EQ(remote.stats().jobs_failed, 2);
  remote.stop();  // sends no stop to the dead, waits for nothing
}

// Rank 2: an encoder serving front 0 while front 1 is dead; it ends when front 0 stops.
TEST(DisaggFailure, AnEncoderDropsADeadFrontAndEndsWhenTheOtherStops_np3) {
  Groups groups(3);
  std::vector<std::string> lines;
  std::mutex lines_mutex;
  EncoderWorkerConfig config = worker_config({0, 1});
  config.log = [&](const std::string& line) {
    const std::lock_guard lock(lines_mutex);
    lines.push_back(line);
  };
  std::promise<absl::Status> ended;
  std::thread encoder_rank([&] { ended.set_value(run_encoder_worker(*tiny_model().model, groups.channels(2), config)); });
  {
    RemoteEncoder remote(front_config({2}), groups.channels(0));
    std::this_thread::sleep_for(std::chrono::duration<double>(2 * kPeerTimeoutS));  // front 1 is found dead
    const absl::StatusOr<PreparedPrompt> served = encode(remote, image_prompt()).get();
    EXPECT_TRUE(served.ok()) << served.status();
    remote.stop();
  }
  encoder_rank.join();
  const absl::Status status = ended.get_future().get();
  EXPECT_TRUE(status.ok()) << status;
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0], HasSubstr("encoder rank 2: front rank 1 stopped answering (no heartbeat for 2 s); dropping its jobs"));
}

// Rank 1: an encoder whose only front (rank 0) is dead ends with Unavailable.
TEST(DisaggFailure, AnEncoderWithNoFrontLeftEndsWithUnavailable_np2) {
  Groups groups(2);
  const absl::Status status = run_encoder_worker(*tiny_model().model, groups.channels(1), worker_config({0}));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(status.message(), HasSubstr("encoder rank 1: no front is left (rank 0 stopped answering before saying stop)"));
}

}  // namespace
}  // namespace plm::serve::disagg
