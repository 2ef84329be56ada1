// SingleRankCommunicator: a group of one rank. Collectives are identities (or copies), so model code
// calls its tensor-parallel regions unconditionally and a size-1 axis costs nothing. It has no peer to
// send to or receive from: point-to-point calls are programmer errors.
#pragma once

#include <memory>
#include <string>

#include "distributed/communicator.h"

namespace plm::distributed {

class SingleRankCommunicator final : public Communicator {
 public:
  explicit SingleRankCommunicator(std::string name = "single") : name_(std::move(name)) {}

  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string name() const override { return name_; }

  void all_reduce(Tensor, ReduceOp, Stream) override {}
  void all_gather(Tensor out, Tensor in, const std::vector<int64_t>& counts, Stream s) override;
  void reduce_scatter(Tensor out, Tensor in, const std::vector<int64_t>& counts, ReduceOp op, Stream s) override;
  void broadcast(Tensor, int root, Stream) override;
  void send(Tensor, int peer, int tag, Stream) override;
  void recv(Tensor, int peer, int tag, Stream) override;
  P2pRequest isend(Tensor, int peer, int tag, Stream) override;
  P2pRequest irecv(Tensor, int peer, int tag, Stream) override;
  std::optional<int> probe(int) override { return std::nullopt; }  // no peers
  void barrier() override {}
  std::unique_ptr<Communicator> split(int color, int key, const std::string& name) override;

 private:
  std::string name_;
};

// A shared size-1 group for callers that hold no communicator for an axis (stateless, so sharing is safe).
Communicator& single_rank_group();

}  // namespace plm::distributed
