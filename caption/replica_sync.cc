#include "caption/replica_sync.h"

namespace plm::caption {

CaptionCounters ReplicaSync::exchange(const CaptionCounters& local, bool done) {
  CaptionCounters mine = local;
  mine.replicas_done = done ? 1 : 0;
  std::array<int64_t, CaptionCounters::kNumFields> values = mine.to_array();
  leaders_.all_reduce(Tensor(values.data(), {CaptionCounters::kNumFields}, DType::kI64), distributed::ReduceOp::kSum);
  return CaptionCounters::from_array(values);
}

}  // namespace plm::caption
