// One Llama decoder layer (spec/plm_spec.md §2.7) in the llm.c shape: a struct of weight views, an
// activation struct that the forward fills and the backward reads, and explicit forward/backward.
//   x += reduce_from_tp(o(attn(rope(q, k), v)))      over h1 = RMSNorm(x),     h1 through copy_to_tp
//   x += reduce_from_tp(down(silu(gate) * up))        over h2 = RMSNorm(x),     h2 through copy_to_tp
// The TP regions are called unconditionally: a size-1 group makes them identities. When tp exceeds the KV heads,
// the ranks holding one KV head (its replicas) each hold its k and v, and each attends with its own query heads:
// in the backward their dk, dv are summed over the replicas (copy_to_tp's backward over the replica group), so
// every replica gets the head's whole weight gradient, and only the first replica passes dk, dv on to h1 (the TP
// all-reduce of dh then counts each KV head once).
// Gradient rule: parameter grads +=, activation grads =, the residual stream's grad flows through dx.
#pragma once

#include <string>

#include "core/arena.h"
#include "core/tensor.h"
#include "distributed/communicator.h"
#include "model/layers/linear.h"
#include "model/layers/norms.h"
#include "model/recompute.h"
#include "model/text/attention_core.h"

namespace plm::model {

// Per-TP-rank sizes of one layer: h = heads / tp, k = max(1, kv_heads / tp), f = F / tp.
struct DecoderLayerDims {
  int64_t hidden = 0;    // H
  int64_t heads = 0;     // h
  int64_t kv_heads = 0;  // k
  int64_t head_dim = 0;  // Dh
  int64_t ffn = 0;       // f
};

struct DecoderLayer {
  RmsNorm input_norm, post_attention_norm;  // (H), replicated
  Linear q_proj;     // (h * head_dim, H)   column-parallel
  Linear k_proj;     // (k * head_dim, H)   column-parallel (replicated when tp > kv_heads)
  Linear v_proj;     // (k * head_dim, H)   column-parallel (replicated when tp > kv_heads)
  Linear o_proj;     // (H, h * head_dim)   row-parallel: partial sums, all-reduced over TP
  Linear gate_proj;  // (f, H)              column-parallel
  Linear up_proj;    // (f, H)              column-parallel
  Linear down_proj;  // (H, f)              row-parallel

  // f(module, linear&) for the seven projections in HF order (LoRA's targets), module e.g. "self_attn.q_proj".
  template <typename F>
  void for_each_projection(F&& f) {
    f("self_attn.q_proj", q_proj);
    f("self_attn.k_proj", k_proj);
    f("self_attn.v_proj", v_proj);
    f("self_attn.o_proj", o_proj);
    f("mlp.gate_proj", gate_proj);
    f("mlp.up_proj", up_proj);
    f("mlp.down_proj", down_proj);
  }

  // f(hf_suffix, tensor) for every parameter tensor, e.g. ("self_attn.q_proj.weight", q_proj.weight), each
  // projection followed by its adapter's tensors, e.g. "self_attn.q_proj.lora_A.weight" (model/layers/lora.h).
  template <typename F>
  void for_each_parameter(F&& f) {
    const auto projection = [&](const std::string& module, Linear& linear) {
      f(module + ".weight", linear.weight);
      linear.lora.for_each_parameter([&](const char* suffix, Tensor& t) { f(module + suffix, t); });
    };
    f("input_layernorm.weight", input_norm.weight);
    projection("self_attn.q_proj", q_proj);
    projection("self_attn.k_proj", k_proj);
    projection("self_attn.v_proj", v_proj);
    projection("self_attn.o_proj", o_proj);
    f("post_attention_layernorm.weight", post_attention_norm.weight);
    projection("mlp.gate_proj", gate_proj);
    projection("mlp.up_proj", up_proj);
    projection("mlp.down_proj", down_proj);
  }

  // The most scratch the adapters of this layer take in one call for `tokens` rows (0 without adapters).
  size_t adapter_scratch_bytes(int64_t tokens) const;
};

// What one layer's forward leaves for its backward, for T packed tokens. Each field's tier (model/recompute.h)
// decides whether a recomputation policy keeps it per layer or in the workspace all layers share; inference
// allocates only what the forward touches: x, rstd1, rstd2, lse and x_mid are then undefined.
struct DecoderLayerActivations {
  Tensor x;        // (T, H) the layer's input (residual stream)               input
  Tensor rstd1;    // (T) f32                                                   expensive
  Tensor h1;       // (T, H) input_norm(x)                                      cheap
  Tensor q;        // (T, h, Dh) after RoPE                                     expensive
  Tensor k, v;     // (T, k, Dh), k after RoPE                                  expensive
  Tensor attn;     // (T, h, Dh) attention output                               expensive
  Tensor lse;      // (T * h) f32, per sequence (1, h, len) blocks              expensive
  Tensor x_mid;    // (T, H) residual stream after the attention block          expensive
  Tensor rstd2;    // (T) f32                                                   expensive
  Tensor h2;       // (T, H) post_attention_norm(x_mid)                         cheap
  Tensor gate, up; // (T, f) before the activation                              cheap
  Tensor act;      // (T, f) silu(gate) * up                                    cheap
  Tensor y;        // (T, H) a branch's output before the residual add          scratch

  // Allocates `part`'s fields onto a copy of `onto` (e.g. a layer's saved tensors onto the shared
  // workspace). alloc: an Arena or an ArenaSizer (to size an arena first).
  template <typename Alloc>
  static DecoderLayerActivations allocate(Alloc& alloc, int64_t tokens, const DecoderLayerDims& d, DType dtype,
                                          ActivationPart part, DecoderLayerActivations onto = {}) {
    using enum ActivationTier;
    DecoderLayerActivations a = onto;
    const int64_t t = tokens;
    const auto field = [&](Tensor& f, ActivationTier tier, bool backward_only, Shape shape, DType type) {
      if (part.includes(tier, backward_only)) f = alloc.alloc(shape, type);
    };
    field(a.x, kInput, true, {t, d.hidden}, dtype);
    field(a.rstd1, kExpensive, true, {t}, DType::kF32);
    field(a.lse, kExpensive, true, {t * d.heads}, DType::kF32);
    field(a.x_mid, kExpensive, true, {t, d.hidden}, dtype);
    field(a.rstd2, kExpensive, true, {t}, DType::kF32);
    field(a.h1, kCheap, false, {t, d.hidden}, dtype);
    field(a.q, kExpensive, false, {t, d.heads, d.head_dim}, dtype);
    field(a.k, kExpensive, false, {t, d.kv_heads, d.head_dim}, dtype);
    field(a.v, kExpensive, false, {t, d.kv_heads, d.head_dim}, dtype);
    field(a.attn, kExpensive, false, {t, d.heads, d.head_dim}, dtype);
    field(a.h2, kCheap, false, {t, d.hidden}, dtype);
    field(a.gate, kCheap, false, {t, d.ffn}, dtype);
    field(a.up, kCheap, false, {t, d.ffn}, dtype);
    field(a.act, kCheap, false, {t, d.ffn}, dtype);
    field(a.y, kScratch, false, {t, d.hidden}, dtype);
    return a;
  }
};

// positions: (T) i32 on the device; inv_freq: (Dh / 2) f32 (rope_inv_freq). x (T, H) is updated in place.
// lora: scratch and dropout keys for the projections' adapters (unused without adapters).
void decoder_layer_forward(const DecoderLayer& layer, DecoderLayerActivations& a, Tensor x, Tensor positions,
                           Tensor inv_freq, const AttentionCore& attention, int layer_index,
                           distributed::Communicator& tp, const LoraPass& lora = {}, Stream s = {});

// Rebuilds what `recompute` did not keep of the layer's activations (a: its saved tensors over the shared
// workspace) from the saved ones, bitwise as the forward made them. Arguments as for the forward; scratch
// holds a copy of the input under full recomputation and the adapters' temporaries; lora_row_keys: the
// forward's dropout keys (undefined: no dropout).
void decoder_layer_recompute(const DecoderLayer& layer, const DecoderLayerActivations& a, Recompute recompute,
                             Tensor positions, Tensor inv_freq, const AttentionCore& attention, int layer_index,
                             distributed::Communicator& tp, Arena& scratch, Tensor lora_row_keys = {},
                             Stream s = {});

// dx: (T, H) gradient w.r.t. the layer's output on entry, w.r.t. its input on return. grad: the layer's
// gradient views (undefined tensors for frozen parameters). kv_replicas: the ranks holding this rank's KV heads
// (a size-1 group unless tp > KV heads). scratch: an arena for temporaries (the adapters' too). lora_row_keys:
// the forward's dropout keys (undefined: no dropout).
void decoder_layer_backward(const DecoderLayer& layer, const DecoderLayer& grad, const DecoderLayerActivations& a,
                            Tensor dx, Tensor positions, Tensor inv_freq, const PackedCausalAttention& attention,
                            distributed::Communicator& tp, distributed::Communicator& kv_replicas, Arena& scratch,
                            Tensor lora_row_keys = {}, Stream s = {});

}  // namespace plm::model
