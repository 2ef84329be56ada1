#include "distributed/communicator.h"

#include "core/check.h"

namespace plm::distributed {

void Communicator::all_gather(Tensor out, Tensor in, Stream s) {
  PLM_CHECK_EQ(out.numel(), in.numel() * size()) << "all_gather on " << name() << ": out " << out.describe()
                                                 << " must hold " << size() << " x " << in.describe();
  all_gather(out, in, std::vector<int64_t>(size(), in.numel()), s);
}

void Communicator::reduce_scatter(Tensor out, Tensor in, ReduceOp op, Stream s) {
  PLM_CHECK_EQ(in.numel(), out.numel() * size()) << "reduce_scatter on " << name() << ": in " << in.describe()
                                                 << " must hold " << size() << " x " << out.describe();
  reduce_scatter(out, in, std::vector<int64_t>(size(), out.numel()), op, s);
}

namespace {

class FinishedTransfer final : public Communicator::Transfer {
 public:
  bool done() override { return true; }
};

}  // namespace

std::unique_ptr<Communicator::Transfer> Communicator::start_send(Tensor t, int peer, int tag) {
  send(t, peer, tag);
  return std::make_unique<FinishedTransfer>();
}

std::unique_ptr<Communicator::Transfer> Communicator::start_recv(Tensor t, int peer, int tag) {
  recv(t, peer, tag);
  return std::make_unique<FinishedTransfer>();
}

std::vector<int64_t> even_counts(int64_t total, int size) {
  std::vector<int64_t> counts(size, total / size);
  for (int r = 0; r < total % size; ++r) ++counts[r];
  return counts;
}

std::string reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return "sum";
    case ReduceOp::kAvg: return "avg";
    case ReduceOp::kMax: return "max";
  }
  return "?";
}

}  // namespace plm::distributed
