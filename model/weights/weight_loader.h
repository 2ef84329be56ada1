// WeightLoader: turns checkpoint tensors into the model's working tensors on one device and dtype
// (f32 on CPU, bf16 on CUDA), one tensor at a time, so peak memory is the model plus one tensor.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "model/layers/linear.h"
#include "model/weights/weight_store.h"

namespace plm::model {

class WeightLoader {
 public:
  WeightLoader(const WeightStore& store, Device device, DType dtype)
      : store_(store), device_(device), dtype_(dtype) {}

  Device device() const { return device_; }
  DType dtype() const { return dtype_; }

  absl::StatusOr<OwnedTensor> tensor(const std::string& name) const;
  // Part `part` of `num_parts` equal contiguous parts of dim `dim` (tensor-parallel shards).
  absl::StatusOr<OwnedTensor> tensor_part(const std::string& name, int dim, int part, int num_parts) const;
  // `prefix` + "weight" (and + "bias" when has_bias).
  absl::StatusOr<Linear> linear(const std::string& prefix, bool has_bias) const;
  // A linear's weight part along dim 0 (column-parallel: output rows, with the matching bias part) or 1
  // (row-parallel: inputs; its bias, added once to the summed result, is loaded only with bias_on_this_rank).
  absl::StatusOr<Linear> linear_part(const std::string& prefix, int dim, int part, int num_parts,
                                     bool has_bias = false, bool bias_on_this_rank = true) const;

 private:
  const WeightStore& store_;
  Device device_;
  DType dtype_;
};

}  // namespace plm::model
