// Linear: y = x W^T + b with the nn.Linear weight layout, the building block of every projection.
// Forward-only for inference; backward lands with training.
#pragma once

#include "core/tensor.h"

namespace plm::model {

struct Linear {
  OwnedTensor weight;  // (out, in)
  OwnedTensor bias;    // (out), or empty when the layer has none

  int64_t in_features() const { return weight.size(1); }
  int64_t out_features() const { return weight.size(0); }
  // x: (rows x in elements) -> y: (rows x out elements), any leading/trailing view of them.
  void forward(Tensor y, Tensor x, Stream s = {}) const;
};

}  // namespace plm::model
