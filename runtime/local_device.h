// The device this rank runs on, for every subcommand: the CPU, or the GPU local_rank % (GPUs on this node),
// made current. One process per GPU under mpirun or srun gives each rank its own GPU.
#pragma once

#include "absl/status/statusor.h"
#include "core/device.h"

namespace plm::runtime {

// FailedPrecondition, saying why, when a GPU is asked for and none is usable.
absl::StatusOr<Device> local_device(DeviceType type);

}  // namespace plm::runtime
