#include "model/layers/linear.h"

#include "core/kernels/ops.h"

namespace plm::model {

namespace {

// x and y may carry any leading dims (and head dims): they are flattened to (rows, features).
void linear_forward(Tensor y, Tensor x, Tensor weight, Tensor bias, Stream s) {
  const int64_t in = weight.size(1), out = weight.size(0);
  const int64_t rows = x.numel() / in;
  matmul(y.reshape({rows, out}), x.reshape({rows, in}), weight, {.trans_b = true, .bias = bias}, s);
}

}  // namespace

void Linear::forward(Tensor y, Tensor x, Stream s) const { linear_forward(y, x, weight, bias, s); }

}  // namespace plm::model
