// LoRA and DoRA adapters on a Linear, as peft 0.21.2 computes them (tools/reference/README.md), with s = alpha / r
// and D the adapter input's inverted dropout (training passes only):
//   LoRA  y = x Wᵀ + b + s · (D(x) Aᵀ) Bᵀ
//   DoRA  y = x Wᵀ + b + (g − 1) ⊙ (D(x) Wᵀ) + g ⊙ s · (D(x) Aᵀ) Bᵀ,   g = m / ‖W + s·B·A‖ per output row
// (without dropout DoRA is y = g ⊙ (x Wᵀ + s (x Aᵀ) Bᵀ) + b). DoRA's norm is detached (peft
// DoraLinearLayer.forward, DoRA paper §4.3): no gradient flows through it. The base W (and b) are frozen.
// The backward recomputes what it needs from x (the dropout mask from its keys, D(x) Aᵀ, DoRA's norm and
// pre-scale output) instead of saving it: rows × r and out × in work, small next to the base GEMMs.
// Gradient rule as Linear's: dx is written (=) unless accumulate_dx, dA, dB, dm accumulate (+=).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/arena.h"
#include "core/tensor.h"

namespace plm::model {

struct Linear;
struct LinearBackwardOptions;

// One projection's adapter as views: the model's tensors or, in a copy rebound to gradient buffers, their
// gradients (undefined where frozen). rank == 0: no adapter.
struct LoraAdapter {
  Tensor a;              // (r, in)   lora_A
  Tensor b;              // (out, r)  lora_B
  Tensor magnitude;      // (out)     DoRA's m
  int64_t rank = 0;      // r
  bool dora = false;
  float scaling = 0.0f;  // alpha / r
  float dropout = 0.0f;  // probability on the adapter's input, training passes only
  uint64_t site = 0;     // which projection of which layer: salts its dropout masks

  bool attached() const { return rank > 0; }
  // f(suffix, tensor&) for each adapter tensor, suffixes as in PEFT's adapter_model.safetensors after the
  // module's name: ".lora_A.weight", ".lora_B.weight", ".lora_magnitude_vector" (DoRA).
  template <typename F>
  void for_each_parameter(F&& f) {
    if (!attached()) return;
    f(".lora_A.weight", a);
    f(".lora_B.weight", b);
    if (dora) f(".lora_magnitude_vector", magnitude);
  }
};

// What every adapted projection of one forward or backward shares.
struct LoraPass {
  Arena* scratch = nullptr;  // temporaries, released before each call returns; required with adapters
  Tensor row_keys;           // (rows) i64 dropout key of each input row on the device; undefined: no dropout
};

// y = the adapted projection of x (shapes as Linear::forward).
void lora_forward(const Linear& layer, Tensor y, Tensor x, const LoraPass& pass, Stream s);
// dx (=, or += with accumulate_dx; may be undefined), grad.lora's defined tensors (+=) and grad.bias (+=).
// grad.weight must be undefined: an adapted projection's base weight is frozen.
void lora_backward(const Linear& layer, Tensor dx, const Linear& grad, Tensor dy, Tensor x,
                   const LinearBackwardOptions& options, const LoraPass& pass, Stream s);
// The most scratch lora_forward / lora_backward take for `rows` input rows (0 without an adapter).
size_t lora_scratch_bytes(const Linear& layer, int64_t rows);
// out (out, in) = the projection with its adapter merged in, as peft's merge_and_unload:
// W + s·B·A, and for DoRA m / ‖W + s·B·A‖ ⊙ (W + s·B·A) per output row.
void lora_merged_weight(Tensor out, const Linear& layer, Stream s = {});

}  // namespace plm::model
