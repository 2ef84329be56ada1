// Collectives and process groups on the in-process LocalCommunicator, for 1-4 ranks (3: uneven splits).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "distributed/consistency.h"
#include "distributed/launch_env.h"
#include "distributed/local_communicator.h"
#include "distributed/parallel_dims.h"
#include "tests/distributed/collective_checks.h"

namespace plm::distributed {
namespace {

// Runs `check` on n local ranks and expects every rank to report no mismatch.
void expect_all_ranks_pass(int n, const std::function<std::string(Communicator&)>& check) {
  std::mutex mutex;
  std::vector<std::string> errors;
  run_local_ranks(n, [&](Communicator& comm) {
    const std::string e = check(comm);
    std::lock_guard<std::mutex> lock(mutex);
    if (!e.empty()) errors.push_back(e);
  });
  EXPECT_TRUE(errors.empty()) << errors.front();
}

class LocalCollectives : public ::testing::TestWithParam<int> {};

TEST_P(LocalCollectives, AllReduce) { expect_all_ranks_pass(GetParam(), testing::check_all_reduce); }
TEST_P(LocalCollectives, AllGather) { expect_all_ranks_pass(GetParam(), testing::check_all_gather); }
TEST_P(LocalCollectives, ReduceScatter) { expect_all_ranks_pass(GetParam(), testing::check_reduce_scatter); }
TEST_P(LocalCollectives, Broadcast) { expect_all_ranks_pass(GetParam(), testing::check_broadcast); }
TEST_P(LocalCollectives, SendRecv) { expect_all_ranks_pass(GetParam(), testing::check_send_recv); }
TEST_P(LocalCollectives, IsendIrecv) { expect_all_ranks_pass(GetParam(), testing::check_isend_irecv); }
TEST_P(LocalCollectives, PolledTransfers) { expect_all_ranks_pass(GetParam(), testing::check_polled_transfers); }
TEST_P(LocalCollectives, StatusAgreement) { expect_all_ranks_pass(GetParam(), testing::check_status_agreement); }

INSTANTIATE_TEST_SUITE_P(Ranks, LocalCollectives, ::testing::Values(1, 2, 3, 4), ::testing::PrintToStringParamName());

TEST(LocalProcessGroups, Layouts) {
  expect_all_ranks_pass(4, [](Communicator& c) { return testing::check_process_groups(c, 2, 2); });
  expect_all_ranks_pass(4, [](Communicator& c) { return testing::check_process_groups(c, 4, 1); });
  expect_all_ranks_pass(4, [](Communicator& c) { return testing::check_process_groups(c, 1, 2); });
  expect_all_ranks_pass(2, [](Communicator& c) { return testing::check_process_groups(c, 1, 1); });
}

// A rank that skips a collective or a send (e.g. an ASSERT that returned early) ends the process within
// PLM_COMM_TIMEOUT_S, naming the stalled operation and rank, instead of leaving the other ranks blocked.
class LocalWatchdogDeathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    GTEST_FLAG_SET(death_test_style, "threadsafe");  // the ranks are threads
    const char* old = std::getenv("PLM_COMM_TIMEOUT_S");
    if (old != nullptr) old_timeout_ = old;
    setenv("PLM_COMM_TIMEOUT_S", "1", 1);
  }
  void TearDown() override {
    if (old_timeout_.empty()) {
      unsetenv("PLM_COMM_TIMEOUT_S");
    } else {
      setenv("PLM_COMM_TIMEOUT_S", old_timeout_.c_str(), 1);
    }
  }

 private:
  std::string old_timeout_;
};

TEST_F(LocalWatchdogDeathTest, SkippedCollectiveAbortsTheOtherRanks) {
  const auto start = std::chrono::steady_clock::now();
  EXPECT_DEATH(run_local_ranks(3,
                               [](Communicator& comm) {
                                 if (comm.rank() == 1) return;  // skips the all-reduce
                                 float x = 1.0f;
                                 comm.all_reduce(Tensor(&x, {1}, DType::kF32), ReduceOp::kSum);
                               }),
               "all_reduce on group 'world' \\(rank [02] of 3\\) did not complete within 1 s");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST_F(LocalWatchdogDeathTest, MissingSendAbortsTheReceiver) {
  EXPECT_DEATH(run_local_ranks(2,
                               [](Communicator& comm) {
                                 if (comm.rank() == 0) return;  // never sends
                                 float x = 0.0f;
                                 comm.recv(Tensor(&x, {1}, DType::kF32), 0, 5);
                               }),
               "recv from rank 0 on group 'world' \\(rank 1 of 2\\) did not complete within 1 s");
}

TEST(ParallelDims, MegatronOrderTpFastest) {
  absl::StatusOr<ParallelDims> dims = ParallelDims::for_world(8, 2, 2);
  ASSERT_TRUE(dims.ok());
  EXPECT_EQ(dims->dp, 2);
  const ParallelDims::Coordinates c = dims->coordinates(5);  // 5 = (1 * 2 + 0) * 2 + 1
  EXPECT_EQ(c.tp_index, 1);
  EXPECT_EQ(c.pp_index, 0);
  EXPECT_EQ(c.dp_index, 1);
  for (int r = 0; r < 8; ++r) EXPECT_EQ(dims->rank_of(dims->coordinates(r)), r);
}

TEST(ParallelDims, RejectsIndivisibleLayoutWithArithmetic) {
  absl::StatusOr<ParallelDims> dims = ParallelDims::for_world(6, 4, 1);
  ASSERT_FALSE(dims.ok());
  EXPECT_NE(dims.status().message().find("world size 6 is not divisible by tp(4) * pp(1) = 4"), std::string::npos)
      << dims.status();
  EXPECT_FALSE(ParallelDims::for_world(4, 0, 1).ok());
}

TEST(Consistency, MismatchedValueIsReportedOnEveryRank) {
  std::mutex mutex;
  std::vector<std::string> messages;
  run_local_ranks(3, [&](Communicator& comm) {
    const absl::Status s = check_same_on_all_ranks(comm, "model config", comm.rank() == 2 ? "layers=3" : "layers=2");
    std::lock_guard<std::mutex> lock(mutex);
    messages.push_back(std::string(s.message()));
  });
  ASSERT_EQ(messages.size(), 3u);
  for (const std::string& m : messages) {
    EXPECT_NE(m.find("model config differs between ranks: rank(s) 2"), std::string::npos) << m;
  }
  run_local_ranks(2, [&](Communicator& comm) { EXPECT_TRUE(check_same_on_all_ranks(comm, "x", "same").ok()); });
}

TEST(LaunchEnv, ReadsOpenMpiThenSlurm) {
  setenv("SLURM_PROCID", "3", 1);
  setenv("SLURM_NTASKS", "8", 1);
  setenv("SLURM_LOCALID", "1", 1);
  unsetenv("OMPI_COMM_WORLD_RANK");
  LaunchEnv env = read_launch_env();
  EXPECT_EQ(env.launcher, "slurm");
  EXPECT_EQ(env.world_rank, 3);
  EXPECT_EQ(env.world_size, 8);
  EXPECT_EQ(env.local_rank, 1);
  setenv("OMPI_COMM_WORLD_RANK", "2", 1);
  setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
  setenv("OMPI_COMM_WORLD_LOCAL_RANK", "0", 1);
  setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "2", 1);
  env = read_launch_env();
  EXPECT_EQ(env.launcher, "openmpi");
  EXPECT_EQ(env.world_rank, 2);
  EXPECT_EQ(env.world_size, 4);
  EXPECT_EQ(env.local_size, 2);
  for (const char* v : {"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "OMPI_COMM_WORLD_RANK",
                        "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"}) {
    unsetenv(v);
  }
  env = read_launch_env();
  EXPECT_EQ(env.launcher, "none");
  EXPECT_EQ(env.world_size, 1);
  EXPECT_EQ(env.local_size, 1);
}

}  // namespace
}  // namespace plm::distributed
