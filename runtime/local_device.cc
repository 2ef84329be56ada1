#include "runtime/local_device.h"

#include "core/cuda/runtime.h"
#include "distributed/launch_env.h"

namespace plm::runtime {

absl::StatusOr<Device> local_device(DeviceType type) {
  if (type == DeviceType::kCpu) return Device::cpu();
  if (cuda_device_count() == 0) return absl::FailedPreconditionError(cuda_unavailable_reason());
  const Device device = Device::cuda(distributed::read_launch_env().local_rank % cuda_device_count());
  cuda_set_device(device.index);
  return device;
}

}  // namespace plm::runtime
