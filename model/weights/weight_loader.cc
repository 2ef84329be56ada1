#include "model/weights/weight_loader.h"

#include "core/status_macros.h"

namespace plm::model {

absl::StatusOr<OwnedTensor> WeightLoader::tensor(const std::string& name) const { return tensor_part(name, 0, 0, 1); }

absl::StatusOr<OwnedTensor> WeightLoader::tensor_part(const std::string& name, int dim, int part, int num_parts) const {
  return load_part(name, dim, part, num_parts, dtype_);
}

absl::StatusOr<OwnedTensor> WeightLoader::matrix_part(const std::string& name, int dim, int part, int num_parts) const {
  PLM_ASSIGN_OR_RETURN(const TensorInfo info, store_.info(name));
  const bool keep = device_.is_cpu() && keep_bf16_matrices_ && info.dtype == DType::kBF16;
  return load_part(name, dim, part, num_parts, keep ? DType::kBF16 : dtype_);
}

absl::StatusOr<OwnedTensor> WeightLoader::load_part(const std::string& name, int dim, int part, int num_parts,
                                                    DType dtype) const {
  PLM_ASSIGN_OR_RETURN(OwnedTensor host, store_.load_slice(name, dim, part, num_parts, dtype));
  if (device_.is_cpu()) return host;
  return to_device(host, device_);
}

absl::StatusOr<Linear> WeightLoader::linear(const std::string& prefix, bool has_bias) const {
  Linear l;
  PLM_ASSIGN_OR_RETURN(l.weight, matrix(prefix + "weight"));
  if (has_bias) {
    PLM_ASSIGN_OR_RETURN(l.bias, tensor(prefix + "bias"));
  }
  return l;
}

absl::StatusOr<Linear> WeightLoader::linear_part(const std::string& prefix, int dim, int part, int num_parts,
                                                 bool has_bias, bool bias_on_this_rank) const {
  Linear l;
  PLM_ASSIGN_OR_RETURN(l.weight, matrix_part(prefix + "weight", dim, part, num_parts));
  if (has_bias && dim == 0) {
    PLM_ASSIGN_OR_RETURN(l.bias, tensor_part(prefix + "bias", 0, part, num_parts));
  } else if (has_bias && bias_on_this_rank) {
    PLM_ASSIGN_OR_RETURN(l.bias, tensor(prefix + "bias"));
  }
  return l;
}

}  // namespace plm::model
