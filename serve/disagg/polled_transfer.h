// A point-to-point transfer with a peer that may die (serve/README.md, "Failure"): started with
// Communicator::isend / irecv, polled with done(), and abandoned (P2pRequest::abandon), never waited on, when it
// is dropped unfinished — a dead peer would hold a wait forever. Its tensor must outlive it, and outlive it for
// good when it is dropped unfinished (wire.h's LostMessages keeps such buffers).
#pragma once

#include <utility>

#include "core/tensor.h"
#include "distributed/communicator.h"

namespace plm::serve::disagg {

class PolledTransfer {
 public:
  explicit PolledTransfer(distributed::P2pRequest request) : request_(std::move(request)) {}
  PolledTransfer(PolledTransfer&& other) noexcept = default;
  PolledTransfer& operator=(PolledTransfer&& other) noexcept {
    if (this != &other) {
      request_.abandon();
      request_ = std::move(other.request_);
    }
    return *this;
  }
  PolledTransfer(const PolledTransfer&) = delete;
  PolledTransfer& operator=(const PolledTransfer&) = delete;
  ~PolledTransfer() { request_.abandon(); }

  bool done() { return request_.done(); }

 private:
  distributed::P2pRequest request_;
};

inline PolledTransfer start_send(distributed::Communicator& comm, Tensor t, int peer, int tag) {
  return PolledTransfer(comm.isend(t, peer, tag));
}
inline PolledTransfer start_recv(distributed::Communicator& comm, Tensor t, int peer, int tag) {
  return PolledTransfer(comm.irecv(t, peer, tag));
}

}  // namespace plm::serve::disagg
