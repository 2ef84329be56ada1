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
  // `prefix` + "weight" (and + "bias" when has_bias).
  absl::StatusOr<Linear> linear(const std::string& prefix, bool has_bias) const;

 private:
  const WeightStore& store_;
  Device device_;
  DType dtype_;
};

}  // namespace plm::model
