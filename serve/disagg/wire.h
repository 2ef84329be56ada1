// The messages between a front (a decoder replica's leader) and an encoder rank. Jobs go front -> encoder on the
// `jobs` group: a header, the items' MediaKeys, then each kind's pixels (f32 host). Replies go encoder -> front:
// a header and per-item flags on the `replies` group (MPI, host), then each kind's post-projector rows on the
// `data` group (NCCL between GPUs, the replies group itself on the CPU). The request number travels in the
// headers (MPI tags are too few to carry it); messages between a pair arrive in order, so the payload that
// follows a header is that header's. Each function is called by the one thread that drives its group.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "core/tensor.h"
#include "distributed/communicator.h"
#include "serve/media_key.h"
#include "serve/request.h"

namespace plm::serve::disagg {

inline constexpr int kJobTag = 31;    // on `jobs`: job headers (probed)
inline constexpr int kReplyTag = 41;  // on `replies`: reply headers (probed)

// A job as the encoder receives it.
struct ReceivedJob {
  int front = 0;      // rank of the sender in the jobs group
  int64_t id = 0;     // the front's request number
  bool stop = false;  // the front is shutting down (or retires this encoder): no more jobs from it
  bool join = false;  // a front the encoder did not know at its start: it will send jobs, then a stop
  std::array<OwnedTensor, 2> pixels;         // per MediaKind: f32 (n, 3, h, w) host; undefined for n = 0
  std::array<std::vector<MediaKey>, 2> keys;  // per MediaKind: n
  int64_t num_items() const { return static_cast<int64_t>(keys[0].size() + keys[1].size()); }
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

// Front side (its dispatcher thread). `prompt`'s pixels and keys.
void send_job(distributed::Communicator& jobs, int encoder, int64_t id, const PreparedPrompt& prompt);
void send_stop(distributed::Communicator& jobs, int encoder);
// Before its first job to an encoder that started without knowing it (`plm serve --rebalance`).
void send_join(distributed::Communicator& jobs, int encoder);
// Encoder side (its receiving thread), after probe(kJobTag) named `front`.
ReceivedJob recv_job(distributed::Communicator& jobs, int front);

// Encoder side (its compute thread). rows[kind]: (n * tokens_per_item, H) on the model's device.
void send_reply(distributed::Communicator& replies, distributed::Communicator& data, int front, const ReplyInfo& info,
                const std::vector<bool>& encoded_flags, const std::array<Tensor, 2>& rows);
// Front side (its receiving thread), after probe(kReplyTag) named `encoder`; rows of `rows_per_item` x `hidden`
// in `dtype` on `device`.
ReceivedReply recv_reply(distributed::Communicator& replies, distributed::Communicator& data, int encoder,
                         int64_t rows_per_item, int64_t hidden, DType dtype, Device device);

}  // namespace plm::serve::disagg
