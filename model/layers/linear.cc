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

void Linear::forward(Tensor y, Tensor x, Stream s) const {
  linear_forward(y, x, weight, bias, s);
}

void LinearView::forward(Tensor y, Tensor x, Stream s) const { linear_forward(y, x, weight, bias, s); }

LinearView linear_rows(const Linear& linear, int64_t begin, int64_t end) {
  LinearView v{linear.weight.view().slice(0, begin, end), Tensor()};
  if (linear.bias.view().defined()) v.bias = linear.bias.view().slice(0, begin, end);
  return v;
}

}  // namespace plm::model
