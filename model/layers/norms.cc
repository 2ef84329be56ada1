#include "model/layers/norms.h"

#include "core/kernels/ops.h"

namespace plm::model {

void LayerNorm::forward(Tensor y, Tensor x, Stream s) const {
  layernorm_forward(y.as_matrix(), Tensor(), Tensor(), x.as_matrix(), weight, bias, eps, s);
}

void RmsNorm::forward(Tensor y, Tensor x, Stream s) const {
  rmsnorm_forward(y.as_matrix(), Tensor(), x.as_matrix(), weight, eps, s);
}

}  // namespace plm::model
