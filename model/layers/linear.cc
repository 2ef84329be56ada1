#include "model/layers/linear.h"

#include "core/kernels/cpu/gemm_bf16_packed.h"
#include "core/kernels/ops.h"

namespace plm::model {

Linear Linear::rows(int64_t begin, int64_t end) const {
  PLM_CHECK(!lora.attached()) << "rows() of a projection with an adapter";
  PLM_CHECK(!weight_panels || (begin % cpu::kWeightPanelRows == 0 && end % cpu::kWeightPanelRows == 0))
      << "rows(" << begin << ", " << end << ") of weight panels of " << cpu::kWeightPanelRows << " rows";
  return {.weight = weight.slice(0, begin, end), .bias = bias.defined() ? bias.slice(0, begin, end) : Tensor(),
          .lora = {}, .compute = compute, .weight_panels = weight_panels};
}

// x, y, dx and dy may carry any leading dims (and head dims): they are flattened to (rows, features).
void Linear::forward(Tensor y, Tensor x, Stream s) const {
  PLM_CHECK(!lora.attached()) << "an adapted projection's forward needs its LoraPass";
  const int64_t rows = x.numel() / in_features();
  matmul(y.reshape({rows, out_features()}), x.reshape({rows, in_features()}), weight,
         {.trans_b = true, .bias = bias, .compute = compute, .b_panels = weight_panels}, s);
}

void Linear::backward(Tensor dx, const Linear& grad, Tensor dy, Tensor x, const LinearBackwardOptions& options,
                      Stream s) const {
  PLM_CHECK(!lora.attached()) << "an adapted projection's backward needs its LoraPass";
  PLM_CHECK(!weight_panels) << "a projection packed for inference (weight panels) has no backward";
  const int64_t in = in_features(), out = out_features(), rows = x.numel() / in;
  const Tensor dy_rows = dy.reshape({rows, out});
  if (dx.defined()) {
    matmul(dx.reshape({rows, in}), dy_rows, weight, {.beta = options.accumulate_dx ? 1.0f : 0.0f, .compute = compute},
           s);
  }
  if (grad.weight.defined()) {
    matmul(grad.weight, dy_rows, x.reshape({rows, in}), {.trans_a = true, .beta = 1.0f, .compute = compute}, s);
  }
  if (grad.bias.defined()) sum_rows(grad.bias, dy_rows, /*accumulate=*/true, s);
}

void pack_weight_panels(Linear& layer) {
  const Tensor& w = layer.weight;
  if (layer.weight_panels || !w.defined() || w.is_cuda() || w.dtype() != DType::kBF16 ||
      layer.compute != DType::kBF16 || layer.lora.attached() || !cpu::cpu_has_avx512_bf16() ||
      !cpu::weight_panels_fit(w.size(0), w.size(1)) || !w.is_contiguous()) {
    return;
  }
  cpu::pack_weight_panels(w.data_as<bf16>(), w.size(0), w.size(1));
  layer.weight_panels = true;
}

void Linear::forward(Tensor y, Tensor x, const LoraPass& pass, Stream s) const {
  if (lora.attached()) {
    lora_forward(*this, y, x, pass, s);
  } else {
    forward(y, x, s);
  }
}

void Linear::backward(Tensor dx, const Linear& grad, Tensor dy, Tensor x, const LinearBackwardOptions& options,
                      const LoraPass& pass, Stream s) const {
  if (lora.attached()) {
    lora_backward(*this, dx, grad, dy, x, options, pass, s);
  } else {
    backward(dx, grad, dy, x, options, s);
  }
}

}  // namespace plm::model
