#include "runtime/model_parallelism.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "distributed/consistency.h"
#include "distributed/launch_env.h"
#include "distributed/mpi_communicator.h"
#include "distributed/nccl_communicator.h"

namespace plm::runtime {

absl::StatusOr<ModelParallelism> set_up_model_parallelism(const ParallelismRequest& request, Device device,
                                                          model::ModelParallel layout) {
  ModelParallelism p;
  p.layout = std::move(layout);
  const distributed::LaunchEnv env = distributed::read_launch_env();
  if (request.tp * request.pp == 1 && env.world_size == 1) return p;
  std::unique_ptr<distributed::Communicator> world = distributed::mpi_world();
  PLM_RETURN_IF_ERROR(
      distributed::check_same_on_all_ranks(*world, absl::StrCat("the ", request.command, " command line"), request.flags));
  PLM_ASSIGN_OR_RETURN(distributed::ProcessGroups groups,
                       distributed::ProcessGroups::create(std::move(world), request.tp, request.pp));
  p.groups = std::make_unique<distributed::ProcessGroups>(std::move(groups));
  if (p.groups->dims.dp != 1 && !request.data_parallel) {
    return absl::InvalidArgumentError(absl::StrCat(request.command, " runs one model: launch tp(", request.tp, ") * pp(",
                                                   request.pp, ") = ", request.tp * request.pp, " ranks, not ",
                                                   p.groups->world->size()));
  }
  if (device.is_cuda()) {
    p.tp = distributed::nccl_communicator(*p.groups->tp, device.index, "tp");
    p.pp = distributed::nccl_communicator(*p.groups->pp, device.index, "pp");
    p.layout.tp = p.tp.get();
    p.layout.pp = p.pp.get();
  } else {
    p.layout.tp = p.groups->tp.get();
    p.layout.pp = p.groups->pp.get();
  }
  return p;
}

}  // namespace plm::runtime
