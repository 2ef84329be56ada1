#include "model/trace.h"

#include <algorithm>

#include "core/cuda/runtime.h"
#include "core/kernels/ops.h"

namespace plm::model {

void CollectingTracer::record(const std::string& name, int layer, Tensor t) {
  const std::string key = layer < 0 ? name : name + "." + std::to_string(layer);
  if (std::find(keep_.begin(), keep_.end(), key) == keep_.end()) return;
  OwnedTensor f32(t.shape(), DType::kF32, t.device());
  if (t.dtype() == DType::kF32) {
    copy_tensor(f32, t);
  } else {
    cast(f32, t);
  }
  recorded_[key].push_back(to_device(f32, Device::cpu()));
}

}  // namespace plm::model
