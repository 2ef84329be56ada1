// The encoder rank of disaggregated serving: it holds only the vision tower and projector (ModelPart::kVision)
// and an EncoderCache of post-projector rows per tile / frame. A receiving thread takes jobs from every front
// into a queue; the calling thread encodes them in batches (at most max_items_per_batch items, the cache's
// misses only, one tower call per kind, each distinct tile once) and sends each job's rows back to its front.
// It returns when every front it knows (front_ranks, plus those that joined later) has said stop or died (its
// heartbeats stopped: its jobs are dropped), `may_exit` is true (or a front died), and the queue is empty:
// Unavailable when every front it knew died.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "distributed/communicator.h"
#include "model/plm_model.h"

namespace plm::serve::disagg {

struct EncoderChannels {
  distributed::Communicator* jobs = nullptr;     // receiving thread: job headers, keys, pixels (host)
  distributed::Communicator* replies = nullptr;  // calling thread: reply headers (host)
  distributed::Communicator* data = nullptr;     // calling thread: the rows (on the model's device)
  distributed::Communicator* heartbeat = nullptr;  // a PeerLiveness thread: liveness of the other side
};

struct EncoderWorkerConfig {
  // In the jobs / replies / heartbeat groups: the fronts that know this encoder from its start (none for a rank
  // that moved here under `--rebalance`); others send a join first and are watched from then on.
  std::vector<int> front_ranks = {0};
  double peer_timeout_s = 10;  // a front silent this long is dead
  std::function<void(const std::string&)> log = nullptr;
  int64_t cache_bytes = int64_t{512} << 20;
  int max_items_per_batch = 32;
  // Polled while every known front has stopped: false keeps the worker waiting for fronts that may still join
  // (`--rebalance`: until this rank is told to move or the job ends).
  std::function<bool()> may_exit = [] { return true; };
};

absl::Status run_encoder_worker(const model::PlmModel& model, const EncoderChannels& channels,
                                const EncoderWorkerConfig& config);

}  // namespace plm::serve::disagg
