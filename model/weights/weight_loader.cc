#include "model/weights/weight_loader.h"

#include "core/status_macros.h"

namespace plm::model {

absl::StatusOr<OwnedTensor> WeightLoader::tensor(const std::string& name) const {
  PLM_ASSIGN_OR_RETURN(OwnedTensor host, store_.load(name, dtype_));
  if (device_.is_cpu()) return host;
  return to_device(host, device_);
}

absl::StatusOr<Linear> WeightLoader::linear(const std::string& prefix, bool has_bias) const {
  Linear l;
  PLM_ASSIGN_OR_RETURN(l.weight, tensor(prefix + "weight"));
  if (has_bias) {
    PLM_ASSIGN_OR_RETURN(l.bias, tensor(prefix + "bias"));
  }
  return l;
}

}  // namespace plm::model
