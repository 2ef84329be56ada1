// CountingCommunicator: wraps another Communicator and counts the payload bytes each operation hands to
// it (per rank, as given: an all-reduce of n bytes counts n, an all-gather its input, a send or isend its
// tensor under "send", a recv or irecv under "recv").
// Used to measure communication volume per token against the analytic formulas; the wire traffic of a
// ring all-reduce is 2 (p - 1) / p times the payload.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "distributed/communicator.h"

namespace plm::distributed {

class CountingCommunicator final : public Communicator {
 public:
  explicit CountingCommunicator(Communicator& inner) : inner_(inner) {}

  // Payload bytes by operation name ("all_reduce", "all_gather", "send", ...).
  const std::map<std::string, int64_t>& bytes() const { return bytes_; }
  const std::map<std::string, int64_t>& calls() const { return calls_; }
  void reset() {
    bytes_.clear();
    calls_.clear();
  }

  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  std::string name() const override { return inner_.name(); }
  void all_reduce(Tensor t, ReduceOp op, Stream s) override {
    count("all_reduce", t);
    inner_.all_reduce(t, op, s);
  }
  void all_gather(Tensor out, Tensor in, const std::vector<int64_t>& counts, Stream s) override {
    count("all_gather", in);
    inner_.all_gather(out, in, counts, s);
  }
  void reduce_scatter(Tensor out, Tensor in, const std::vector<int64_t>& counts, ReduceOp op, Stream s) override {
    count("reduce_scatter", in);
    inner_.reduce_scatter(out, in, counts, op, s);
  }
  void broadcast(Tensor t, int root, Stream s) override {
    count("broadcast", t);
    inner_.broadcast(t, root, s);
  }
  void send(Tensor t, int peer, int tag, Stream s) override {
    count("send", t);
    inner_.send(t, peer, tag, s);
  }
  void recv(Tensor t, int peer, int tag, Stream s) override {
    count("recv", t);
    inner_.recv(t, peer, tag, s);
  }
  std::optional<int> probe(int tag) override { return inner_.probe(tag); }
  P2pRequest isend(Tensor t, int peer, int tag, Stream s) override {
    count("send", t);
    return inner_.isend(t, peer, tag, s);
  }
  P2pRequest irecv(Tensor t, int peer, int tag, Stream s) override {
    count("recv", t);
    return inner_.irecv(t, peer, tag, s);
  }
  void barrier() override { inner_.barrier(); }
  std::unique_ptr<Communicator> split(int color, int key, const std::string& name) override {
    return inner_.split(color, key, name);
  }

 private:
  void count(const std::string& op, const Tensor& t) {
    bytes_[op] += static_cast<int64_t>(t.nbytes());
    ++calls_[op];
  }

  Communicator& inner_;
  std::map<std::string, int64_t> bytes_, calls_;
};

}  // namespace plm::distributed
