// ProcessGroups: the world communicator split into this rank's TP, PP and DP groups (ParallelDims order).
// Built once at startup and passed to whoever needs a group (never a global). Collective over the world.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "distributed/communicator.h"
#include "distributed/parallel_dims.h"

namespace plm::distributed {

struct ProcessGroups {
  ParallelDims dims;
  ParallelDims::Coordinates coords{0, 0, 0};
  std::unique_ptr<Communicator> world;
  std::unique_ptr<Communicator> tp;  // ranks that differ only in tp_index
  std::unique_ptr<Communicator> pp;  // ... only in pp_index (the pipeline of this rank)
  std::unique_ptr<Communicator> dp;  // ... only in dp_index

  // Validates tp * pp against the world size before splitting anything.
  static absl::StatusOr<ProcessGroups> create(std::unique_ptr<Communicator> world, int tp, int pp);
};

}  // namespace plm::distributed
