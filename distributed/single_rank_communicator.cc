#include "distributed/single_rank_communicator.h"

#include "core/check.h"

namespace plm::distributed {

namespace {

void copy_flat(Tensor out, Tensor in, const std::vector<int64_t>& counts, Stream s) {
  PLM_CHECK(counts.size() == 1 && counts[0] == in.numel() && out.numel() == in.numel())
      << "a single-rank collective moves the whole tensor";
  if (out.data() != in.data()) copy_tensor(out.reshape({out.numel()}), in.reshape({in.numel()}), s);
}

}  // namespace

void SingleRankCommunicator::all_gather(Tensor out, Tensor in, const std::vector<int64_t>& counts, Stream s) {
  copy_flat(out, in, counts, s);
}

void SingleRankCommunicator::reduce_scatter(Tensor out, Tensor in, const std::vector<int64_t>& counts, ReduceOp,
                                            Stream s) {
  copy_flat(out, in, counts, s);
}

void SingleRankCommunicator::broadcast(Tensor, int root, Stream) {
  PLM_CHECK_EQ(root, 0) << "broadcast from rank " << root << " in a group of one (" << name_ << ")";
}

void SingleRankCommunicator::send(Tensor, int peer, int tag, Stream) {
  PLM_CHECK(false) << "send to rank " << peer << " (tag " << tag << ") in a group of one (" << name_ << ")";
}

void SingleRankCommunicator::recv(Tensor, int peer, int tag, Stream) {
  PLM_CHECK(false) << "recv from rank " << peer << " (tag " << tag << ") in a group of one (" << name_ << ")";
}

P2pRequest SingleRankCommunicator::isend(Tensor t, int peer, int tag, Stream s) {
  send(t, peer, tag, s);
  return P2pRequest();
}

P2pRequest SingleRankCommunicator::irecv(Tensor t, int peer, int tag, Stream s) {
  recv(t, peer, tag, s);
  return P2pRequest();
}

std::unique_ptr<Communicator> SingleRankCommunicator::split(int, int, const std::string& name) {
  return std::make_unique<SingleRankCommunicator>(name);
}

Communicator& single_rank_group() {
  static SingleRankCommunicator group("single");
  return group;
}

}  // namespace plm::distributed
