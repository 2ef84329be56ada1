// Threads per rank: pinned ranks keep their cores, unpinned ones divide the node's.
#include "runtime/cpu_threads.h"

#include <gtest/gtest.h>

namespace plm::runtime {
namespace {

TEST(ThreadsPerRank, PinnedRanksKeepTheirCoresUnpinnedOnesShareTheNode) {
  struct Case {
    int affinity, online, local_ranks, want;
  };
  const Case cases[] = {
      {1, 2, 2, 1},     // mpirun -n 2 on 2 cores: OpenMPI pins each rank to one core
      {2, 2, 4, 1},     // mpirun -n 4 --oversubscribe on 2 cores: unpinned, at least one thread each
      {16, 16, 2, 8},   // --bind-to none, 2 ranks on 16 cores
      {16, 16, 3, 5},   // the remainder stays idle rather than oversubscribe
      {4, 16, 2, 4},    // pinned to a 4-core socket
      {8, 8, 1, 8},     // one rank: every core
  };
  for (const Case& c : cases) {
    EXPECT_EQ(threads_per_rank(c.affinity, c.online, c.local_ranks), c.want)
        << c.affinity << " of " << c.online << " cores, " << c.local_ranks << " ranks";
  }
}

}  // namespace
}  // namespace plm::runtime
