// ReplicaSync: the data-parallel replicas of a caption job (the lead rank of each, over `leaders`) sum their
// counters every tick, so rank 0 shows the job's progress, and finish together without a long barrier. Each
// exchange is one all-reduce of a few integers; every replica calls exchange() about once per tick interval while
// it works and, once its items are done, keeps calling it (done = true) until every replica is done. So no rank
// waits in a collective for more than about one tick of its slowest peer, far below the communicators' stall
// watchdog, however unequal the shards. Not thread-safe: the job's main thread calls it.
#pragma once

#include "caption/caption_counters.h"
#include "distributed/communicator.h"

namespace plm::caption {

class ReplicaSync {
 public:
  // `leaders` (one rank per replica) must outlive this.
  explicit ReplicaSync(distributed::Communicator& leaders) : leaders_(leaders) {}

  // Collective over the leaders: the sum of every replica's counters (replicas_done counts the done ones).
  CaptionCounters exchange(const CaptionCounters& local, bool done);
  bool all_done(const CaptionCounters& total) const { return total.replicas_done == leaders_.size(); }
  int num_replicas() const { return leaders_.size(); }

 private:
  distributed::Communicator& leaders_;
};

}  // namespace plm::caption
