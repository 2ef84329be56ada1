#include "distributed/process_groups.h"

#include "core/status_macros.h"

namespace plm::distributed {

absl::StatusOr<ProcessGroups> ProcessGroups::create(std::unique_ptr<Communicator> world, int tp, int pp) {
  PLM_ASSIGN_OR_RETURN(ParallelDims dims, ParallelDims::for_world(world->size(), tp, pp));
  ProcessGroups groups;
  groups.dims = dims;
  const int rank = world->rank();
  const ParallelDims::Coordinates c = dims.coordinates(rank);
  groups.coords = c;
  // Color = the coordinates that stay fixed inside the group; key = the index that varies.
  groups.tp = world->split(c.dp_index * dims.pp + c.pp_index, c.tp_index, "tp");
  groups.pp = world->split(c.dp_index * dims.tp + c.tp_index, c.pp_index, "pp");
  groups.dp = world->split(c.pp_index * dims.tp + c.tp_index, c.dp_index, "dp");
  groups.world = std::move(world);
  return groups;
}

}  // namespace plm::distributed
