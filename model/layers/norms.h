// LayerNorm (vision tower) and RMSNorm (Llama) layers over the last dim, as structs of views (parameters
// or, rebound, their gradients). The forward saves the statistics backward needs (mean/rstd (N) f32)
// when they are passed; inference passes undefined tensors. Gradient rule: dx =, dw/db +=.
#pragma once

#include "core/tensor.h"

namespace plm::model {

struct LayerNorm {
  Tensor weight;  // (D)
  Tensor bias;    // (D)
  float eps = 1e-5f;
  // x, y: (..., D); mean, rstd: (rows) f32 or undefined.
  void forward(Tensor y, Tensor mean, Tensor rstd, Tensor x, Stream s = {}) const;
  void forward(Tensor y, Tensor x, Stream s = {}) const { forward(y, Tensor(), Tensor(), x, s); }
  // grad.weight / grad.bias may be undefined (frozen).
  void backward(Tensor dx, const LayerNorm& grad, Tensor dy, Tensor x, Tensor mean, Tensor rstd, Stream s = {}) const;
};

struct RmsNorm {
  Tensor weight;  // (D)
  float eps = 1e-5f;
  void forward(Tensor y, Tensor rstd, Tensor x, Stream s = {}) const;  // x, y: (..., D); rstd: (rows) or undefined
  void forward(Tensor y, Tensor x, Stream s = {}) const { forward(y, Tensor(), x, s); }
  void backward(Tensor dx, const RmsNorm& grad, Tensor dy, Tensor x, Tensor rstd, Stream s = {}) const;
};

}  // namespace plm::model
