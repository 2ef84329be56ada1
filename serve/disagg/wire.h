// The messages between a front (a decoder replica's leader) and an encoder rank. Jobs go front -> encoder on the
// `jobs` group: a header, the items' MediaKeys, then each kind's pixels (f32 host). Replies go encoder -> front:
// a header and per-item flags on the `replies` group (MPI, host), then each kind's post-projector rows on the
// `data` group (NCCL between GPUs, the replies group itself on the CPU). The request number travels in the
// headers (MPI tags are too few to carry it); messages between a pair arrive in order, so the payload that
// follows a header is that header's. Each function is called by the one thread that drives its group.
// Peers may die (serve/README.md, "Failure"): a header is received only once probed (it is there), everything else
// is a started transfer polled until it finishes or `peer_alive()` turns false; a message cut short that way is
// lost, and its buffers are kept in a LostMessages until its owner stops, as the transport may still touch them.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "core/tensor.h"
#include "distributed/communicator.h"
#include "serve/disagg/polled_transfer.h"
#include "serve/media_key.h"
#include "serve/request.h"

namespace plm::serve::disagg {

inline constexpr int kJobTag = 31;    // on `jobs`: job headers (probed)
inline constexpr int kReplyTag = 41;  // on `replies`: reply headers (probed)

using PeerAlive = std::function<bool()>;

// The transfers of one message and the buffers they read or write.
struct WireMessage {
  std::vector<std::shared_ptr<void>> buffers;  // first: destroyed after the transfers are abandoned
  std::vector<PolledTransfer> transfers;
};

// Messages whose peer died before they finished, kept until this object goes. Thread-safe.
class LostMessages {
 public:
  void keep(WireMessage message);

 private:
  std::mutex mutex_;
  std::vector<WireMessage> messages_;
};

// A job's media as the front sends it (the front needs neither once the rows are back).
struct JobMedia {
  std::array<std::vector<MediaKey>, 2> keys;  // per MediaKind: n
  std::array<OwnedTensor, 2> pixels;          // per MediaKind: f32 (n, 3, h, w) host; undefined for n = 0
};
// A job as the encoder receives it.
struct ReceivedJob {
  int front = 0;      // rank of the sender in the jobs group
  int64_t id = 0;     // the front's request number
  bool stop = false;  // the front is shutting down (or retires this encoder): no more jobs from it
  bool join = false;  // a front the encoder did not know at its start: it will send jobs, then a stop
  JobMedia media;
  int64_t num_items() const { return static_cast<int64_t>(media.keys[0].size() + media.keys[1].size()); }
};

// What an encoder says with each reply: about the job, and about itself (for the front's pool metrics).
struct ReplyInfo {
  int64_t id = 0;
  std::array<int64_t, 2> num_items{};  // per MediaKind
  std::array<int64_t, 2> encoded{};    // of them, items the tower ran on (the rest came from its cache)
  std::array<double, 2> encode_s{};    // this job's share of the tower's time, per kind
  int64_t queued_items = 0;            // items waiting on the encoder after this reply (from every front)
  double busy_s = 0;                   // the encoder's tower time since it started
  double uptime_s = 0;                 // since it started
};

struct ReceivedReply {
  ReplyInfo info;
  std::vector<bool> encoded_flags;  // images then videos: the tower ran on the item
  std::array<OwnedTensor, 2> rows;  // per MediaKind: (n * tokens_per_item, H), model dtype on its device
  int64_t payload_bytes = 0;
  double transfer_s = 0;            // receiving the rows
};

// Waits for a message with `tag` from any peer and returns the peer, or nullopt once `give_up()` is true. Polls
// with sleeps from 20 us to 2 ms, so an idle waiter costs no core (as Communicator::wait_for_broadcast).
std::optional<int> wait_for_message(distributed::Communicator& comm, int tag, const std::function<bool()>& give_up);

// The prompt's keys (copied) and pixels (moved out).
JobMedia take_job_media(PreparedPrompt& prompt);
// Front side (its dispatcher thread): starts sending a job, which is in flight until finished() (or lost): a
// stalled encoder must not hold up the jobs for the others.
WireMessage start_job(distributed::Communicator& jobs, int encoder, int64_t id, JobMedia media);
// Whether every transfer of `m` is done; never waits.
bool finished(WireMessage& m);
// Small messages (they never wait on the encoder). Stop: this front sends no more jobs. Join: before its first job
// to an encoder that started without knowing this front (`plm serve --rebalance`).
void send_stop(distributed::Communicator& jobs, int encoder, const PeerAlive& alive, LostMessages& lost);
void send_join(distributed::Communicator& jobs, int encoder, const PeerAlive& alive, LostMessages& lost);
// Encoder side (its receiving thread), after probe(kJobTag) named `front`; nullopt when the front died first.
std::optional<ReceivedJob> recv_job(distributed::Communicator& jobs, int front, const PeerAlive& alive,
                                    LostMessages& lost);

// Encoder side (its compute thread). rows[kind]: (n * tokens_per_item, H) on the model's device; false when the
// front died first.
bool send_reply(distributed::Communicator& replies, distributed::Communicator& data, int front, const ReplyInfo& info,
                const std::vector<bool>& encoded_flags, std::array<OwnedTensor, 2> rows, const PeerAlive& alive,
                LostMessages& lost);
// Front side (its receiving thread), after probe(kReplyTag) named `encoder`; rows of `rows_per_item` x `hidden`
// in `dtype` on `device`; nullopt when the encoder died first.
std::optional<ReceivedReply> recv_reply(distributed::Communicator& replies, distributed::Communicator& data, int encoder,
                                        int64_t rows_per_item, int64_t hidden, DType dtype, Device device,
                                        const PeerAlive& alive, LostMessages& lost);

}  // namespace plm::serve::disagg
