// Communicator: collectives and point-to-point transfers among the ranks of one group.
// Implementations: MpiCommunicator (CPU tensors), NcclCommunicator (CUDA tensors), LocalCommunicator
// (threads of one process; the fake the multi-rank tests also run on).
// Contract: every rank of the group calls the same collectives in the same order with matching shapes
// and dtypes. A failure of the transport (a dead peer, a timeout) is not recoverable for a training or
// serving job: the implementation aborts the whole job with a message naming the operation, the group
// and the rank, rather than returning or hanging; only started transfers (start_send / start_recv) leave
// waiting on a peer that may be dead to the caller. Not thread-safe: one thread drives a communicator.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/tensor.h"

namespace plm::distributed {

enum class ReduceOp { kSum, kAvg, kMax };

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
  // Sends `out` to `peer` (send_tag) and receives `in` from it (recv_tag) as one exchange, so two ranks trading
  // tensors (a pipeline's activation for a gradient) never wait on each other's send: MPI_Sendrecv, one NCCL
  // group. The default sends, then receives: right where a send never waits for its receiver (the local fake).
  virtual void send_recv(Tensor out, int send_tag, Tensor in, int recv_tag, int peer, Stream s = {}) {
    send(out, peer, send_tag, s);
    recv(in, peer, recv_tag, s);
  }
  virtual void barrier() = 0;

  // A point-to-point transfer in flight, for peers that may die (serve/disagg/ under mpirun --enable-recovery):
  // poll done() instead of blocking. Its tensor must stay alive until done() is true; destroying an unfinished
  // transfer abandons it, and its tensor must then stay alive for good (the transport may still touch it).
  // A transfer must not outlive its communicator.
  class Transfer {
   public:
    virtual ~Transfer() = default;
    virtual bool done() = 0;
  };
  // The defaults run the blocking send / recv and return a finished transfer (transports whose peers cannot die
  // alone: threads, NCCL). A started receive checks the received size as recv does.
  virtual std::unique_ptr<Transfer> start_send(Tensor t, int peer, int tag);
  virtual std::unique_ptr<Transfer> start_recv(Tensor t, int peer, int tag);

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
