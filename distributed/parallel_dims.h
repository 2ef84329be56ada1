// ParallelDims: the TP x PP x DP decomposition of the world, Megatron order (TP fastest-varying, so a
// TP group is adjacent ranks inside a node; then PP; DP outermost):
//   rank = (dp_index * pp + pp_index) * tp + tp_index
// Validated up front with the arithmetic in the message.
#pragma once

#include "absl/status/statusor.h"

namespace plm::distributed {

struct ParallelDims {
  int tp = 1;
  int pp = 1;
  int dp = 1;

  struct Coordinates {
    int tp_index, pp_index, dp_index;
  };

  // dp = world / (tp * pp); fails unless tp, pp >= 1 and tp * pp divides world.
  static absl::StatusOr<ParallelDims> for_world(int world_size, int tp, int pp);

  int world_size() const { return tp * pp * dp; }
  Coordinates coordinates(int rank) const;
  int rank_of(const Coordinates& c) const;
};

}  // namespace plm::distributed
