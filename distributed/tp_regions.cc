#include "distributed/tp_regions.h"

#include "core/check.h"

namespace plm::distributed {

void copy_to_tp_backward(Tensor dx, Communicator& tp, Stream s) { tp.all_reduce(dx, ReduceOp::kSum, s); }

void reduce_from_tp_forward(Tensor y, Communicator& tp, Stream s) { tp.all_reduce(y, ReduceOp::kSum, s); }

void gather_tp_blocks(Tensor out, Tensor in, Communicator& tp, Stream s) {
  const int64_t n = in.size(-1);
  PLM_CHECK_EQ(out.size(-1), n * tp.size()) << "gather_tp_blocks: " << in.describe() << " into " << out.describe();
  PLM_CHECK_EQ(out.numel(), in.numel() * tp.size());
  if (tp.size() == 1) {
    copy_tensor(out, in, s);
    return;
  }
  // Gather whole blocks rank-major, then place block r at columns [r n, (r + 1) n) of every row.
  OwnedTensor blocks({tp.size(), in.numel()}, in.dtype(), in.device());
  tp.all_gather(blocks.view().reshape({tp.size() * in.numel()}), in.reshape({in.numel()}), s);
  const Tensor out_rows = out.as_matrix();
  const int64_t rows = out_rows.size(0);
  for (int r = 0; r < tp.size(); ++r) {
    copy_tensor(out_rows.slice(1, r * n, (r + 1) * n), blocks.view().select(0, r).reshape({rows, n}), s);
  }
}

void take_tp_block(Tensor out, Tensor in, Communicator& tp, Stream s) {
  const int64_t n = out.size(-1);
  PLM_CHECK_EQ(in.size(-1), n * tp.size()) << "take_tp_block: " << in.describe() << " into " << out.describe();
  const int r = tp.rank();
  copy_tensor(out.as_matrix(), in.as_matrix().slice(1, r * n, (r + 1) * n), s);
}

}  // namespace plm::distributed
