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

// A view of rows [begin, end) of a weight (and bias): one block of a fused projection such as qkv.
struct LinearView {
  Tensor weight;  // (end - begin, in)
  Tensor bias;    // (end - begin) or undefined
  void forward(Tensor y, Tensor x, Stream s = {}) const;
};
LinearView linear_rows(const Linear& linear, int64_t begin, int64_t end);

}  // namespace plm::model
