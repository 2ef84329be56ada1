// ModelParallelism: this rank's part of a tensor x pipeline layout of one model, for the subcommands that run
// a model under mpirun / srun (generate, serve, caption): the process groups, NCCL communicators over them on a
// GPU, and the model::ModelParallel that PlmModel::load takes. On one rank with tp = pp = 1 nothing is set up
// (no MPI). Every rank must run the same command line (checked: a mismatch would hang or diverge later).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/device.h"
#include "distributed/communicator.h"
#include "distributed/process_groups.h"
#include "model/parallel.h"

namespace plm::runtime {

struct ParallelismRequest {
  std::string command;  // "plm generate": for messages
  std::string flags;    // the command line, compared across ranks
  int tp = 1, pp = 1;
  bool data_parallel = false;  // more ranks than tp * pp make data-parallel replicas (else an error)
};

struct ModelParallelism {
  std::unique_ptr<distributed::ProcessGroups> groups;  // null on one rank
  std::unique_ptr<distributed::Communicator> tp, pp;   // NCCL over groups->tp / pp (CUDA only)
  model::ModelParallel layout;                         // what PlmModel::load takes

  int world_rank() const { return groups ? groups->world->rank() : 0; }
  int world_size() const { return groups ? groups->world->size() : 1; }
  int replica() const { return groups ? groups->coords.dp_index : 0; }        // data-parallel replica of this rank
  int num_replicas() const { return groups ? groups->dims.dp : 1; }
  // Rank 0 of its replica's model (first stage, tp rank 0): the one that prints, serves or writes.
  bool is_replica_leader() const { return !groups || (groups->coords.tp_index == 0 && groups->coords.pp_index == 0); }
  // The model's tensor-parallel group with its device-side twin (serve/step_mirror.h's channel); nulls on one rank.
  distributed::Communicator* tp_host() const { return groups && groups->dims.tp > 1 ? groups->tp.get() : nullptr; }
  distributed::Communicator* tp_device() const { return layout.tp; }
};

// `layout` carries the caller's layout options (replicate_vision, stage_layer_counts); the communicators are
// filled in here. InvalidArgument when the launch does not match tp * pp (times replicas when allowed).
absl::StatusOr<ModelParallelism> set_up_model_parallelism(const ParallelismRequest& request, Device device,
                                                          model::ModelParallel layout = {});

}  // namespace plm::runtime
