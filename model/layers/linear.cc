#include "model/layers/linear.h"

#include "core/kernels/ops.h"

namespace plm::model {

Linear Linear::rows(int64_t begin, int64_t end) const {
  return {.weight = weight.slice(0, begin, end), .bias = bias.defined() ? bias.slice(0, begin, end) : Tensor()};
}

// x, y, dx and dy may carry any leading dims (and head dims): they are flattened to (rows, features).
void Linear::forward(Tensor y, Tensor x, Stream s) const {
  const int64_t rows = x.numel() / in_features();
  matmul(y.reshape({rows, out_features()}), x.reshape({rows, in_features()}), weight,
         {.trans_b = true, .bias = bias}, s);
}

void Linear::backward(Tensor dx, const Linear& grad, Tensor dy, Tensor x, const LinearBackwardOptions& options,
                      Stream s) const {
  const int64_t in = in_features(), out = out_features(), rows = x.numel() / in;
  const Tensor dy_rows = dy.reshape({rows, out});
  if (dx.defined()) {
    matmul(dx.reshape({rows, in}), dy_rows, weight, {.beta = options.accumulate_dx ? 1.0f : 0.0f}, s);
  }
  if (grad.weight.defined()) {
    matmul(grad.weight, dy_rows, x.reshape({rows, in}), {.trans_a = true, .beta = 1.0f}, s);
  }
  if (grad.bias.defined()) sum_rows(grad.bias, dy_rows, /*accumulate=*/true, s);
}

}  // namespace plm::model
