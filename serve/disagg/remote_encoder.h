// RemoteEncoder: a front's way to the encoder pool (disaggregated serving). encode() queues a prepared prompt;
// a dispatcher thread sends it to the least-loaded live encoder (fewest items: those this front has outstanding
// there plus the queue the encoder last reported; ties in turn), holding it back while the embedding bytes this
// front awaits exceed max_in_flight_bytes (backpressure); a receiving thread takes the replies from any encoder,
// fills the prompt's MediaTiles::embeddings and calls its `done`. Every message to an encoder is a started
// transfer (wire.h). Under `--rebalance` the set of encoders changes: add_encoder() joins one (the dispatcher sends
// it a join before any job, and it is watched from then on), retire_encoder() stops routing to one and, once its
// outstanding jobs are answered, tells it this front is done and no longer watches it. Thread-safe (MediaEncoder's
// contract); each thread drives its own group. Failure (serve/README.md): an encoder whose heartbeats stop
// (PeerLiveness) is dead: the requests it holds fail with Unavailable (HTTP 503), new ones go to the encoders left,
// and once none is left every request with media fails so and `on_pool_empty` is called.
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/node_hash_map.h"
#include "serve/disagg/encoder_worker.h"
#include "serve/disagg/peer_liveness.h"
#include "serve/disagg/wire.h"
#include "serve/prompt_preparer.h"

namespace plm::serve::disagg {

struct RemoteEncoderConfig {
  std::vector<int> encoder_ranks = {};                 // in the jobs / replies / data groups
  bool join_encoders = false;                          // they started without knowing this front: join each first
  int64_t max_in_flight_bytes = int64_t{256} << 20;    // embedding bytes sent for and not yet received
  int64_t rows_per_item = 0, hidden = 0;               // an item's rows: tokens_per_tile x hidden size
  DType dtype = DType::kF32;                           // the decoder model's
  Device device;
  double peer_timeout_s = 10;                          // an encoder silent this long is dead
  std::function<void(const std::string&)> log = nullptr;  // a line per encoder death
  std::function<void()> on_pool_empty = nullptr;          // once, when the last encoder has died
};

// The front's view of the encoder pool, for /metrics and the log.
struct EncoderPoolStats {
  struct Encoder {
    int rank = 0;
    int64_t outstanding_items = 0;  // sent by this front, not yet answered
    int64_t queued_items = 0;       // the encoder's queue (all fronts) at its last reply
    double busy_fraction = 0;       // its tower time over its uptime, at its last reply
    bool alive = true;
  };
  std::vector<Encoder> encoders;
  int64_t jobs_waiting = 0;          // held back by backpressure (or not yet dispatched)
  int64_t jobs_done = 0;
  int64_t in_flight_bytes = 0;
  int64_t embedding_bytes = 0;       // received
  int64_t transfers = 0;
  double transfer_s = 0;             // summed over transfers
  double round_trip_s = 0;           // job sent -> rows received, summed
  std::array<int64_t, 2> items{};    // per MediaKind, sent
  std::array<int64_t, 2> encoded{};  // of them, the tower ran on (not the encoder's cache)
  std::array<double, 2> encode_s{};  // tower time of those
  int64_t jobs_failed = 0;           // by an encoder's death, or because none was left
  int num_alive() const;
};

class RemoteEncoder final : public MediaEncoder {
 public:
  RemoteEncoder(const RemoteEncoderConfig& config, const EncoderChannels& channels);
  ~RemoteEncoder() override;  // stop()
  RemoteEncoder(const RemoteEncoder&) = delete;
  RemoteEncoder& operator=(const RemoteEncoder&) = delete;

  void encode(PreparedPrompt prompt, Done done) override;
  // `--rebalance`: route to encoder `rank` from now on (after a join), or no longer (its jobs in flight finish, or
  // fail with 503 if it dies first).
  void add_encoder(int rank);
  void retire_encoder(int rank);
  // Dispatches what is queued, waits for its replies, then tells every encoder this front is done. Idempotent.
  void stop();
  EncoderPoolStats stats() const;

 private:
  struct Job {
    int64_t id = 0;
    PreparedPrompt prompt;
    Done done;
    int encoder = -1;  // index into stats_.encoders (and routing_) once sent
    int64_t bytes = 0;  // its embedding rows
    std::chrono::steady_clock::time_point sent{};
  };

  void dispatch_loop();
  void receive_loop();
  // An encoder's part in the routing; kJoining and kRetiring wait for the dispatcher (join sent; jobs answered).
  enum class Routing { kJoining, kRoutable, kRetiring, kRetired };
  // Under mutex_: the dispatcher's next step, if any (nullopt: wait).
  struct Action {
    enum class Kind { kJoin, kStop, kJob, kFail, kFinish } kind;
    int rank = -1;     // the encoder's (kJoin, kStop, kJob)
    int64_t id = 0;    // kJob: the request's number (the job waits in in_flight_)
    JobMedia media{};  // kJob: what to send
    Job job{};         // kFail: a job no encoder is left for
  };
  std::optional<Action> next_action();
  int least_loaded();  // mutex_ held; -1 when no encoder is routable and alive
  int num_left() const;  // mutex_ held: encoders joining or routable, alive
  void deliver(Job job, const ReceivedReply& reply);
  void encoder_died(int rank);  // the heartbeat thread
  // Takes the jobs in flight on dead encoders out (mutex_ held): the caller fails them unlocked.
  std::vector<Job> take_orphans();
  void fail(std::vector<Job> jobs);

  const RemoteEncoderConfig config_;
  const EncoderChannels channels_;

  mutable std::mutex mutex_;  // guards everything below
  std::condition_variable wake_;
  std::deque<Job> waiting_;
  absl::node_hash_map<int64_t, Job> in_flight_;  // by request number: sent, awaiting replies
  int64_t next_id_ = 1;
  int last_chosen_ = -1;
  bool stopping_ = false, dispatcher_done_ = false;
  EncoderPoolStats stats_;  // encoders: every one ever routed to, in order (the index of a Job's encoder)
  std::vector<Routing> routing_;  // per stats_.encoders
  LostMessages lost_;  // jobs and replies cut short by an encoder's death

  std::unique_ptr<PeerLiveness> liveness_;  // calls encoder_died: after everything it touches
  std::thread dispatcher_, receiver_;       // last: they start after everything above exists
};

}  // namespace plm::serve::disagg
