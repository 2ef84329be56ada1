// PeerLiveness: which peers of a disaggregated-serving rank are still alive, by heartbeats over a group of its
// own. A thread sends a small message to every watched peer each interval and takes theirs; a peer is dead once
// nothing came from it for `timeout_s` (a rank killed under `mpirun --enable-recovery` just goes silent: MPI
// reports nothing). A dead peer stays dead until watched again. The watched peers must watch this rank back for
// as long as it needs them: under `--rebalance` a front forgets an encoder once it expects nothing more from it
// (retired, or the front stopped), and a join starts the watch on both sides again. Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "distributed/communicator.h"
#include "serve/disagg/polled_transfer.h"

namespace plm::serve::disagg {

struct PeerLivenessConfig {
  double interval_s = 0.5;
  double timeout_s = 10;
  // Called once per peer that dies, on the heartbeat thread (it must not wait on this object).
  std::function<void(int peer)> on_death = nullptr;
};

class PeerLiveness {
 public:
  // `heartbeat` (its rank numbering names the peers) is driven by this object's thread alone and must outlive it.
  PeerLiveness(distributed::Communicator& heartbeat, std::vector<int> peers, const PeerLivenessConfig& config);
  ~PeerLiveness();
  PeerLiveness(const PeerLiveness&) = delete;
  PeerLiveness& operator=(const PeerLiveness&) = delete;

  // Watch `peer` from now on (as if just heard from), or no longer (it gets no heartbeats and is never declared
  // dead; alive() keeps its last answer).
  void watch(int peer);
  void forget(int peer);

  bool alive(int peer) const;  // `peer` was watched at some time
  double timeout_s() const { return config_.timeout_s; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Peer {
    int rank = 0;
    Clock::time_point last_heard;
    bool alive = true;
    bool watched = true;
    std::optional<PolledTransfer> beat;  // the last heartbeat sent to it, if unfinished
  };

  void loop();
  void beat_and_listen();  // one interval's sends and receives
  // Peers newly past the timeout, marked dead (mutex_ held).
  std::vector<int> newly_dead(Clock::time_point now);

  distributed::Communicator& comm_;
  const PeerLivenessConfig config_;
  Clock::time_point last_beat_{};  // the heartbeat thread's alone

  mutable std::mutex mutex_;  // guards everything below
  std::condition_variable stop_cv_;
  bool stop_ = false;
  std::vector<Peer> peers_;

  std::thread thread_;  // last
};

}  // namespace plm::serve::disagg
