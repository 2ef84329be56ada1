// The replicas' sync on two in-process ranks: the counters add up, and a replica that finishes early keeps
// exchanging until the slow one is done, so both leave the loop at the same exchange.
#include "caption/replica_sync.h"

#include <gtest/gtest.h>

#include <atomic>

#include "distributed/local_communicator.h"

namespace plm::caption {
namespace {

TEST(ReplicaSync, SumsCountersAndFinishesTogether_np2) {
  std::atomic<int> exchanges[2] = {0, 0};
  distributed::run_local_ranks(2, [&](distributed::Communicator& comm) {
    ReplicaSync sync(comm);
    EXPECT_EQ(sync.num_replicas(), 2);
    const int rank = comm.rank();
    const int work = rank == 0 ? 2 : 7;  // unequal shards: rank 1 has more ticks of work
    CaptionCounters mine{.items_total = work, .frames = 4 * (rank + 1)};
    for (int tick = 0; tick < work; ++tick) {
      mine.items_done = tick;
      const CaptionCounters total = sync.exchange(mine, /*done=*/false);
      EXPECT_EQ(total.items_total, 9);
      EXPECT_EQ(total.frames, 12);
      EXPECT_FALSE(sync.all_done(total));
      ++exchanges[rank];
    }
    mine.items_done = work;
    CaptionCounters total = sync.exchange(mine, /*done=*/true);
    ++exchanges[rank];
    while (!sync.all_done(total)) {
      total = sync.exchange(mine, /*done=*/true);
      ++exchanges[rank];
    }
    EXPECT_EQ(total.items_done, 9);
    EXPECT_EQ(total.replicas_done, 2);
  });
  EXPECT_EQ(exchanges[0].load(), exchanges[1].load());
  EXPECT_EQ(exchanges[1].load(), 8);
}

}  // namespace
}  // namespace plm::caption
