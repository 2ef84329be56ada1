// Linear: y = x W^T + b with the nn.Linear weight layout, the building block of every projection, with an
// optional LoRA / DoRA adapter (model/layers/lora.h). A struct of views (llm.c style): the same struct holds
// a layer's parameters or, rebound to gradient buffers, its gradients. Gradient rule: dx is written (=)
// unless accumulate_dx, dW/db and the adapter's grads accumulate (+=).
#pragma once

#include "core/tensor.h"
#include "model/layers/lora.h"

namespace plm::model {

struct LinearBackwardOptions {
  bool accumulate_dx = false;  // dx += instead of dx = (several projections read the same input)
};

struct Linear {
  Tensor weight;  // (out, in)
  Tensor bias;    // (out), or undefined when the layer has none
  LoraAdapter lora;  // attached only to fine-tuned projections (then weight and bias are frozen)
  DType compute = DType::kF32;  // the GEMMs' MatmulOptions::compute (kBF16: CPU bf16 compute mode), both passes
  // The weight is stored in weight panels (core/kernels/cpu/gemm_bf16_packed.h), as CPU bf16 inference packs
  // it at load (pack_weight_panels below): forward only, no adapter.
  bool weight_panels = false;

  int64_t in_features() const { return weight.size(1); }
  int64_t out_features() const { return weight.size(0); }
  // Rows [begin, end) of the output: a view of the weight rows (and bias), e.g. q of a fused qkv. In weight
  // panels both ends must be multiples of the panel height.
  Linear rows(int64_t begin, int64_t end) const;

  // x: (rows x in elements) -> y: (rows x out elements), any leading/trailing view of them. Without an
  // adapter.
  void forward(Tensor y, Tensor x, Stream s = {}) const;
  // The same with the adapter applied when one is attached.
  void forward(Tensor y, Tensor x, const LoraPass& pass, Stream s = {}) const;
  // dy (rows x out), x (rows x in) saved from the forward. dx may be undefined (nothing upstream needs
  // it); grad.weight / grad.bias may be undefined (frozen). Needs f32 or same-dtype weights (not the
  // bf16-on-CPU inference layout). Without an adapter.
  void backward(Tensor dx, const Linear& grad, Tensor dy, Tensor x, const LinearBackwardOptions& options = {},
                Stream s = {}) const;
  // The same through the adapter when one is attached (grad.lora receives its gradients).
  void backward(Tensor dx, const Linear& grad, Tensor dy, Tensor x, const LinearBackwardOptions& options,
                const LoraPass& pass, Stream s = {}) const;
};

// CPU bf16 inference: rewrites the weight in place into weight panels where the CPU has AVX512-BF16 and the
// shape fits (a no-op otherwise, or when packed already).
void pack_weight_panels(Linear& layer);

}  // namespace plm::model
