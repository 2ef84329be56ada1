// LayerNorm (vision tower) and RMSNorm (Llama) layers over the last dim. Forward-only for inference.
#pragma once

#include "core/tensor.h"

namespace plm::model {

struct LayerNorm {
  OwnedTensor weight;  // (D)
  OwnedTensor bias;    // (D)
  float eps = 1e-5f;
  void forward(Tensor y, Tensor x, Stream s = {}) const;  // x, y: (..., D)
};

struct RmsNorm {
  OwnedTensor weight;  // (D)
  float eps = 1e-5f;
  void forward(Tensor y, Tensor x, Stream s = {}) const;  // x, y: (..., D)
};

}  // namespace plm::model
