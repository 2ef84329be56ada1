// PoolControl: every rank's view of which pool each rank is in and, under `plm serve --rebalance`, the protocol
// that moves one rank between the pools. Rank 0 (a front that never moves) coordinates: its pool monitor reports
// each window (observe), RebalancePolicy decides, and rank 0 tells every rank "rank R moves to pool P". The fronts
// stop routing to a leaving encoder; the moving rank drains (an encoder: until every front has said stop; a front:
// its HTTP server, its requests in flight finishing), frees its role's weights, loads the other role's, and
// reports back (rejoined); rank 0 then tells every rank the move is complete (fronts route to a new encoder). When
// rank 0 has drained it waits for a move in progress, then ends the job on every rank. One thread per rank (the
// listener) drives the control group; the others post to it. Its messages are started sends, never waited on, so
// that a dead rank (serve/README.md, "Failure") cannot hold up the listener. Without --rebalance: the layout's
// roles, no thread.
// Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "distributed/communicator.h"
#include "serve/disagg/pool_layout.h"
#include "serve/disagg/pool_monitor.h"
#include "serve/disagg/rebalance_policy.h"
#include "serve/disagg/remote_encoder.h"
#include "serve/disagg/wire.h"

namespace plm::serve::disagg {

struct PoolControlConfig {
  bool rebalance = false;
  int rebalance_windows = 3;  // consecutive monitor windows (RebalancePolicy)
  std::function<void(const std::string&)> log;
};

class PoolControl {
 public:
  // `control`: a group of every rank that nothing else uses; it must outlive this object.
  PoolControl(distributed::Communicator& control, const PoolLayout& layout, const PoolControlConfig& config);
  ~PoolControl();
  PoolControl(const PoolControl&) = delete;
  PoolControl& operator=(const PoolControl&) = delete;

  PoolRole role(int rank) const;      // after a move is announced: its new pool
  std::vector<int> encoder_ranks() const;  // settled in the encoder pool (not moving)
  int num_decoder_ranks() const;      // settled in the decoder pool

  // A front's hooks: its RemoteEncoder follows the encoder pool (nullptr detaches: before it stops), and `drain`
  // (its HTTP server's; empty detaches: before the server is destroyed) runs when the front moves or the job ends.
  void attach_encoders(RemoteEncoder* encoders);
  void attach_drain(std::function<void()> drain);
  // An encoder's (EncoderWorkerConfig::may_exit): true once this rank moves away or the job ends.
  bool encoder_may_exit() const;
  // This rank serves in its role (a front: its server is ready; an encoder: its weights are loaded). After a move:
  // reports to rank 0 that it rejoined; otherwise nothing.
  void rejoined();

  // Rank 0: one monitor window's suggestion.
  void observe(const SplitSuggestion& suggestion);
  // Rank 0, once its server has drained: waits for a move in progress, then ends the job on every rank.
  void finish();

  std::string render() const;  // Prometheus text: ranks per pool, moves done, a move in progress

 private:
  enum class Kind : int64_t { kMove = 1, kRejoined = 2, kMoved = 3, kEnd = 4 };
  struct Message {
    Kind kind = Kind::kEnd;
    int rank = 0;
    PoolRole role = PoolRole::kDecoder;
  };
  void send(int peer, const Message& m);
  void send_to_others(const Message& m);
  Message recv(int peer);
  // What a message means to this rank; mutex_ held.
  void apply(const Message& m);
  void coordinate();  // rank 0's listener
  void follow();      // the other ranks'

  distributed::Communicator& control_;
  const PoolControlConfig config_;
  const int self_;

  mutable std::mutex mutex_;  // guards everything below
  std::condition_variable changed_;
  std::vector<PoolRole> roles_;  // per rank
  int moving_ = -1;              // the rank between roles, or -1
  std::chrono::steady_clock::time_point move_started_{};
  int64_t moves_done_ = 0;
  std::optional<RebalancePolicy> policy_;  // rank 0 with --rebalance
  std::optional<Message> pending_move_;    // rank 0: decided, not yet announced
  bool rejoin_pending_ = false;            // this rank, moved: to report
  bool finishing_ = false, ended_ = false, stopping_ = false;
  bool leaving_ = false;  // an encoder that moves or ends
  bool drain_asked_ = false;
  RemoteEncoder* encoders_ = nullptr;
  std::function<void()> drain_;

  std::vector<WireMessage> sending_;  // the listener's sends not yet seen finished

  std::thread listener_;  // last
};

}  // namespace plm::serve::disagg
