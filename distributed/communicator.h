// Communicator: collectives and point-to-point transfers among the ranks of one group.
// Implementations: MpiCommunicator (CPU tensors), NcclCommunicator (CUDA tensors), LocalCommunicator
// (threads of one process; the fake the multi-rank tests also run on).
// Contract: every rank of the group calls the same collectives in the same order with matching shapes
// and dtypes. A failure of the transport (a dead peer, a timeout) is not recoverable for a training or
// serving job: the implementation aborts the whole job with a message naming the operation, the group
// and the rank, rather than returning or hanging; only a polled and abandoned P2pRequest (done(), abandon())
// leaves waiting on a peer that may be dead to the caller. Not thread-safe: one thread drives a communicator.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/device.h"
#include "core/tensor.h"

namespace plm::distributed {

enum class ReduceOp { kSum, kAvg, kMax };

// A point-to-point transfer in flight (Communicator::isend / irecv). Move-only. wait() blocks until it is done
// (idempotent), done() polls; destroying or overwriting a request waits for it, so a buffer is never released
// under a transfer. abandon() is for a peer presumed dead (serve/disagg/ under mpirun --enable-recovery): the
// transfer is given up without waiting (a receive cancelled where the transport can), and its tensor must then
// stay alive for good, since the transport may still touch it. A request must not outlive its communicator.
class P2pRequest {
 public:
  // What a transport keeps for one transfer in flight.
  class Pending {
   public:
    virtual ~Pending() = default;
    virtual void wait() = 0;
    virtual bool test() = 0;  // finished (then as after wait()); never blocks
    virtual void abandon() {}
  };

  P2pRequest() = default;  // nothing in flight
  explicit P2pRequest(std::unique_ptr<Pending> pending) : pending_(std::move(pending)) {}
  P2pRequest(P2pRequest&& other) noexcept = default;
  P2pRequest& operator=(P2pRequest&& other) noexcept {
    if (this != &other) {
      wait();
      pending_ = std::move(other.pending_);
    }
    return *this;
  }
  P2pRequest(const P2pRequest&) = delete;
  P2pRequest& operator=(const P2pRequest&) = delete;
  ~P2pRequest() { wait(); }

  bool in_flight() const { return pending_ != nullptr; }
  void wait() {
    if (!pending_) return;
    pending_->wait();
    pending_.reset();
  }
  bool done() {
    if (pending_ && pending_->test()) pending_.reset();
    return pending_ == nullptr;
  }
  void abandon() {
    if (!pending_) return;
    pending_->abandon();
    pending_.reset();
  }

 private:
  std::unique_ptr<Pending> pending_;
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string name() const = 0;  // "world", "tp", ... for messages

  // In place over all ranks' `t`.
  virtual void all_reduce(Tensor t, ReduceOp op, Stream s = {}) = 0;
  // out = concat over ranks of `in`, in rank order; counts[r] elements come from rank r (counts may be
  // unequal); out has sum(counts) elements. All contiguous, same dtype.
  virtual void all_gather(Tensor out, Tensor in, const std::vector<int64_t>& counts, Stream s = {}) = 0;
  // in: sum(counts) elements, rank r receives the reduction of the slice [offset_r, offset_r + counts[r]).
  virtual void reduce_scatter(Tensor out, Tensor in, const std::vector<int64_t>& counts, ReduceOp op,
                              Stream s = {}) = 0;
  virtual void broadcast(Tensor t, int root, Stream s = {}) = 0;
  // A host broadcast the other ranks may wait on indefinitely (followers idle until the root has work, e.g.
  // serve/step_mirror.h): no stall timeout, and an implementation whose waits spin a core polls with short
  // sleeps instead. Matches only wait_for_broadcast on the other ranks.
  virtual void wait_for_broadcast(Tensor t, int root) { broadcast(t, root); }
  // Matched by (peer, tag) in order.
  virtual void send(Tensor t, int peer, int tag, Stream s = {}) = 0;
  virtual void recv(Tensor t, int peer, int tag, Stream s = {}) = 0;
  // The rank of a peer whose message with `tag` is waiting to be received (the oldest such), without
  // receiving it or blocking; nullopt when none. For receivers that serve several peers (serve/disagg/).
  // Host transports only: NCCL cannot look at a message before its matching recv.
  virtual std::optional<int> probe(int tag) = 0;
  // Non-blocking send and receive, matched with the peer's send / recv / isend / irecv like send and recv. The
  // tensor must stay alive and untouched (a send) or unread (a receive) until the request's wait() returns.
  // On a host transport wait() blocks until then; on NCCL the transfer runs on a side stream after the work
  // enqueued on `s` so far, and wait() makes `s` wait for it (no host sync). NCCL matches the operations between
  // two ranks in the order they are posted, each finishing only when its match runs: a caller must post them in
  // an order both peers agree on (trainer/pipeline_schedule.h does); MPI and the local fake need no order.
  virtual P2pRequest isend(Tensor t, int peer, int tag, Stream s = {}) = 0;
  virtual P2pRequest irecv(Tensor t, int peer, int tag, Stream s = {}) = 0;
  virtual void barrier() = 0;

  // A sub-group of the ranks that pass the same color, ordered by key (MPI_Comm_split semantics).
  // Collective over this communicator.
  virtual std::unique_ptr<Communicator> split(int color, int key, const std::string& name) = 0;

  // Equal-count conveniences.
  void all_gather(Tensor out, Tensor in, Stream s = {});
  void reduce_scatter(Tensor out, Tensor in, ReduceOp op, Stream s = {});
};

// counts for an equal split of `total` elements over `size` ranks (the first total % size get one more).
std::vector<int64_t> even_counts(int64_t total, int size);

std::string reduce_op_name(ReduceOp op);

}  // namespace plm::distributed
