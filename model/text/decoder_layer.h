// One Llama decoder layer (spec/plm_spec.md §2.7) in the llm.c shape: a struct of weight views, an
// activation struct that the forward fills and the backward reads, and explicit forward/backward.
//   x += reduce_from_tp(o(attn(rope(q, k), v)))      over h1 = RMSNorm(x),     h1 through copy_to_tp
//   x += reduce_from_tp(down(silu(gate) * up))        over h2 = RMSNorm(x),     h2 through copy_to_tp
// The TP regions are called unconditionally: a size-1 group makes them identities.
// Gradient rule: parameter grads +=, activation grads =, the residual stream's grad flows through dx.
#pragma once

#include <string>

#include "core/arena.h"
#include "core/tensor.h"
#include "distributed/communicator.h"
#include "model/layers/linear.h"
#include "model/layers/norms.h"
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

// What one layer's forward leaves for its backward, for T packed tokens. Inference allocates only the
// scratch (for_backward = false): x, rstd1, rstd2, lse and x_mid are then undefined.
struct DecoderLayerActivations {
  Tensor x;        // (T, H) the layer's input (residual stream), saved
  Tensor rstd1;    // (T) f32
  Tensor h1;       // (T, H) input_norm(x)
  Tensor q;        // (T, h, Dh) after RoPE
  Tensor k, v;     // (T, k, Dh), k after RoPE
  Tensor attn;     // (T, h, Dh) attention output
  Tensor lse;      // (T * h) f32, per sequence (1, h, len) blocks
  Tensor x_mid;    // (T, H) residual stream after the attention block, saved
  Tensor rstd2;    // (T) f32
  Tensor h2;       // (T, H) post_attention_norm(x_mid)
  Tensor gate, up; // (T, f) before the activation
  Tensor act;      // (T, f) silu(gate) * up
  Tensor y;        // (T, H) scratch: a branch's output before the residual add

  // alloc: an Arena or an ArenaSizer (to size an arena first).
  template <typename Alloc>
  static DecoderLayerActivations allocate(Alloc& alloc, int64_t tokens, const DecoderLayerDims& d, DType dtype,
                                          bool for_backward) {
    DecoderLayerActivations a;
    const int64_t t = tokens;
    if (for_backward) {
      a.x = alloc.alloc({t, d.hidden}, dtype);
      a.rstd1 = alloc.alloc({t}, DType::kF32);
      a.lse = alloc.alloc({t * d.heads}, DType::kF32);
      a.x_mid = alloc.alloc({t, d.hidden}, dtype);
      a.rstd2 = alloc.alloc({t}, DType::kF32);
    }
    a.h1 = alloc.alloc({t, d.hidden}, dtype);
    a.q = alloc.alloc({t, d.heads, d.head_dim}, dtype);
    a.k = alloc.alloc({t, d.kv_heads, d.head_dim}, dtype);
    a.v = alloc.alloc({t, d.kv_heads, d.head_dim}, dtype);
    a.attn = alloc.alloc({t, d.heads, d.head_dim}, dtype);
    a.h2 = alloc.alloc({t, d.hidden}, dtype);
    a.gate = alloc.alloc({t, d.ffn}, dtype);
    a.up = alloc.alloc({t, d.ffn}, dtype);
    a.act = alloc.alloc({t, d.ffn}, dtype);
    a.y = alloc.alloc({t, d.hidden}, dtype);
    return a;
  }
};

// positions: (T) i32 on the device; inv_freq: (Dh / 2) f32 (rope_inv_freq). x (T, H) is updated in place.
// lora: scratch and dropout keys for the projections' adapters (unused without adapters).
void decoder_layer_forward(const DecoderLayer& layer, DecoderLayerActivations& a, Tensor x, Tensor positions,
                           Tensor inv_freq, const AttentionCore& attention, int layer_index,
                           distributed::Communicator& tp, const LoraPass& lora = {}, Stream s = {});

// dx: (T, H) gradient w.r.t. the layer's output on entry, w.r.t. its input on return. grad: the layer's
// gradient views (undefined tensors for frozen parameters). scratch: an arena for temporaries (the
// adapters' too). lora_row_keys: the forward's dropout keys (undefined: no dropout).
void decoder_layer_backward(const DecoderLayer& layer, const DecoderLayer& grad, const DecoderLayerActivations& a,
                            Tensor dx, Tensor positions, Tensor inv_freq, const PackedCausalAttention& attention,
                            distributed::Communicator& tp, Arena& scratch, Tensor lora_row_keys = {},
                            Stream s = {});

}  // namespace plm::model
