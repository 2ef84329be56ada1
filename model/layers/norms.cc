#include "model/layers/norms.h"

#include "core/kernels/ops.h"

namespace plm::model {

void LayerNorm::forward(Tensor y, Tensor mean, Tensor rstd, Tensor x, Stream s) const {
  layernorm_forward(y.as_matrix(), mean, rstd, x.as_matrix(), weight, bias, eps, s);
}

void LayerNorm::backward(Tensor dx, const LayerNorm& grad, Tensor dy, Tensor x, Tensor mean, Tensor rstd,
                         Stream s) const {
  layernorm_backward(dx.as_matrix(), grad.weight, grad.bias, dy.as_matrix(), x.as_matrix(), weight, mean, rstd, s);
}

void RmsNorm::forward(Tensor y, Tensor rstd, Tensor x, Stream s) const {
  rmsnorm_forward(y.as_matrix(), rstd, x.as_matrix(), weight, eps, s);
}

void RmsNorm::backward(Tensor dx, const RmsNorm& grad, Tensor dy, Tensor x, Tensor rstd, Stream s) const {
  rmsnorm_backward(dx.as_matrix(), grad.weight, dy.as_matrix(), x.as_matrix(), weight, rstd, s);
}

}  // namespace plm::model
