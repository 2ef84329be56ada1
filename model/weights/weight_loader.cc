#include "model/weights/weight_loader.h"

#include "core/status_macros.h"

namespace plm::model {

Tensor WeightLoader::keep(OwnedTensor t) const {
  storage_.push_back(std::move(t));
  return storage_.back().view();
}

absl::StatusOr<Tensor> WeightLoader::tensor(const std::string& name) const { return tensor_part(name, 0, 0, 1); }

absl::StatusOr<Tensor> WeightLoader::tensor_part(const std::string& name, int dim, int part, int num_parts) const {
  return load_part(name, dim, part, num_parts, dtype_);
}

DType WeightLoader::matrix_dtype(const std::string& name) const {
  const absl::StatusOr<TensorInfo> info = store_.info(name);
  const bool keep_bf16 = info.ok() && device_.is_cpu() && keep_bf16_matrices_ && info->dtype == DType::kBF16;
  // Inference in the bf16 compute mode multiplies bf16 matrices; training keeps f32 masters (the optimizer
  // updates them) and its GEMMs round them (MatmulOptions::compute).
  const bool bf16_inference = compute_ == DType::kBF16 && keep_bf16_matrices_;
  return keep_bf16 || bf16_inference ? DType::kBF16 : dtype_;
}

absl::StatusOr<Tensor> WeightLoader::matrix_part(const std::string& name, int dim, int part, int num_parts) const {
  PLM_RETURN_IF_ERROR(store_.info(name).status());
  return load_part(name, dim, part, num_parts, matrix_dtype(name));
}

absl::StatusOr<Tensor> WeightLoader::load_part(const std::string& name, int dim, int part, int num_parts,
                                               DType dtype) const {
  PLM_ASSIGN_OR_RETURN(OwnedTensor host, store_.load_slice(name, dim, part, num_parts, dtype));
  slices_[name] = {.dim = dim, .parts = {part}, .num_parts = num_parts};
  if (device_.is_cpu()) return keep(std::move(host));
  return keep(to_device(host, device_));
}

absl::StatusOr<Tensor> WeightLoader::stacked_parts(const std::string& name, const std::vector<int>& parts,
                                                   int num_parts, DType dtype) const {
  std::vector<OwnedTensor> loaded;
  int64_t rows = 0;
  for (int part : parts) {
    PLM_ASSIGN_OR_RETURN(OwnedTensor p, store_.load_slice(name, 0, part, num_parts, dtype));
    rows += p.size(0);
    loaded.push_back(std::move(p));
  }
  Shape shape = loaded.front().shape();
  shape[0] = rows;
  OwnedTensor stacked(shape, dtype, device_);
  int64_t at = 0;
  for (const OwnedTensor& p : loaded) {
    copy_tensor(stacked.view().slice(0, at, at + p.size(0)), p);
    at += p.size(0);
  }
  slices_[name] = {.dim = 0, .parts = parts, .num_parts = num_parts};
  return keep(std::move(stacked));
}

absl::StatusOr<Linear> WeightLoader::linear(const std::string& prefix, bool has_bias) const {
  Linear l;
  l.compute = compute_;
  PLM_ASSIGN_OR_RETURN(l.weight, matrix(prefix + "weight"));
  if (has_bias) {
    PLM_ASSIGN_OR_RETURN(l.bias, tensor(prefix + "bias"));
  }
  return l;
}

absl::StatusOr<Linear> WeightLoader::linear_part(const std::string& prefix, int dim, int part, int num_parts,
                                                 bool has_bias, bool bias_on_this_rank) const {
  Linear l;
  l.compute = compute_;
  PLM_ASSIGN_OR_RETURN(l.weight, matrix_part(prefix + "weight", dim, part, num_parts));
  if (has_bias && dim == 0) {
    PLM_ASSIGN_OR_RETURN(l.bias, tensor_part(prefix + "bias", 0, part, num_parts));
  } else if (has_bias && bias_on_this_rank) {
    PLM_ASSIGN_OR_RETURN(l.bias, tensor(prefix + "bias"));
  }
  return l;
}

absl::StatusOr<Linear> WeightLoader::stacked_row_parts(const std::string& prefix, const std::vector<int>& parts,
                                                       int num_parts, bool has_bias) const {
  const std::string weight = prefix + "weight";
  PLM_RETURN_IF_ERROR(store_.info(weight).status());
  Linear l;
  l.compute = compute_;
  PLM_ASSIGN_OR_RETURN(l.weight, stacked_parts(weight, parts, num_parts, matrix_dtype(weight)));
  if (has_bias) {
    PLM_ASSIGN_OR_RETURN(l.bias, stacked_parts(prefix + "bias", parts, num_parts, dtype_));
  }
  return l;
}

}  // namespace plm::model
