// The collective checks on MpiCommunicator, run by ctest under mpirun -n 1, 2 and 4. Every rank runs
// every test; a failure on any rank makes that rank (and so mpirun) exit non-zero.
#include <gtest/gtest.h>

#include "distributed/mpi_communicator.h"
#include "tests/distributed/collective_checks.h"

namespace plm::distributed {
namespace {

Communicator& world() {
  static std::unique_ptr<Communicator> comm = mpi_world();
  return *comm;
}

TEST(MpiCollectives, AllReduce) { EXPECT_EQ(testing::check_all_reduce(world()), ""); }
TEST(MpiCollectives, AllGather) { EXPECT_EQ(testing::check_all_gather(world()), ""); }
TEST(MpiCollectives, ReduceScatter) { EXPECT_EQ(testing::check_reduce_scatter(world()), ""); }
TEST(MpiCollectives, Broadcast) { EXPECT_EQ(testing::check_broadcast(world()), ""); }
TEST(MpiCollectives, SendRecv) { EXPECT_EQ(testing::check_send_recv(world()), ""); }
TEST(MpiCollectives, IsendIrecv) { EXPECT_EQ(testing::check_isend_irecv(world()), ""); }
TEST(MpiCollectives, PolledTransfers) { EXPECT_EQ(testing::check_polled_transfers(world()), ""); }
TEST(MpiCollectives, StatusAgreement) { EXPECT_EQ(testing::check_status_agreement(world()), ""); }
TEST(MpiCollectives, ProcessGroups) {
  const int n = world().size();
  const int tp = n % 2 == 0 ? 2 : 1;
  EXPECT_EQ(testing::check_process_groups(world(), tp, n % (2 * tp) == 0 ? 2 : 1), "");
  EXPECT_EQ(testing::check_process_groups(world(), 1, n), "");
}

}  // namespace
}  // namespace plm::distributed

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  plm::distributed::ensure_mpi_initialized();
  const int result = RUN_ALL_TESTS();
  plm::distributed::world().barrier();
  return result;
}
