// One Perception Encoder block (timm Eva as PLM configures it, spec/plm_spec.md §2.3) in the llm.c shape:
//   x += gamma_1 * reduce_from_tp(proj(attn(rope2d(q, k), v)))   over h1 = LN1(x) through copy_to_tp
//   x += gamma_2 * reduce_from_tp(fc2(gelu(fc1(h2))))            over h2 = LN2(x) through copy_to_tp
// Attention is full (non-causal) within each tile. Gradient rule: parameter grads +=, activation grads =.
#pragma once

#include <string>

#include "core/arena.h"
#include "core/tensor.h"
#include "distributed/communicator.h"
#include "model/layers/linear.h"
#include "model/layers/norms.h"
#include "model/recompute.h"

namespace plm::model {

// Per-TP-rank sizes (t = the tower's TP degree, 1 when replicated).
struct VisionBlockDims {
  int64_t tiles = 0;     // n
  int64_t seq = 0;       // S tokens per tile (patches + CLS)
  int64_t dim = 0;       // D
  int64_t heads = 0;     // h = heads / t
  int64_t head_dim = 0;  // Dh
  int64_t mlp = 0;       // m = M / t
  int num_prefix_tokens = 0;  // CLS tokens, not rotated
};

struct VisionBlock {
  LayerNorm norm1, norm2;  // (D), replicated
  Linear qkv;              // (3 h Dh, D) + bias: this rank's q, k and v heads stacked, column-parallel
  Linear proj;             // (D, h Dh) row-parallel; bias on TP rank 0 only
  Tensor gamma1, gamma2;   // (D) LayerScale, undefined when the config has none
  Linear fc1;              // (m, D) + bias, column-parallel
  Linear fc2;              // (D, m) row-parallel; bias on TP rank 0 only

  Linear q() const { return qkv.rows(0, qkv.out_features() / 3); }
  Linear k() const { return qkv.rows(qkv.out_features() / 3, 2 * qkv.out_features() / 3); }
  Linear v() const { return qkv.rows(2 * qkv.out_features() / 3, qkv.out_features()); }

  // f(timm suffix, tensor&) for every parameter tensor this rank holds.
  template <typename F>
  void for_each_parameter(F&& f) {
    const auto linear = [&](const char* prefix, Linear& l) {
      f(std::string(prefix) + "weight", l.weight);
      if (l.bias.defined()) f(std::string(prefix) + "bias", l.bias);
    };
    f(std::string("norm1.weight"), norm1.weight);
    f(std::string("norm1.bias"), norm1.bias);
    linear("attn.qkv.", qkv);
    linear("attn.proj.", proj);
    if (gamma1.defined()) f(std::string("gamma_1"), gamma1);
    f(std::string("norm2.weight"), norm2.weight);
    f(std::string("norm2.bias"), norm2.bias);
    linear("mlp.fc1.", fc1);
    linear("mlp.fc2.", fc2);
    if (gamma2.defined()) f(std::string("gamma_2"), gamma2);
  }
};

// One block's activations for n tiles. Each field's tier (model/recompute.h) decides whether a recomputation
// policy keeps it per block or in the workspace all blocks share; inference allocates only what the forward
// touches (no x, statistics, lse or x_mid).
struct VisionBlockActivations {
  Tensor x;              // (n, S, D) block input                                input
  Tensor mean1, rstd1;   // (n S) f32                                            expensive
  Tensor h1;             // (n, S, D)                                            cheap
  Tensor qk;             // (n, S, h, Dh) q, then k, before RoPE                 scratch
  Tensor q, k, v;        // (n, S, h, Dh), q and k after RoPE                    expensive
  Tensor attn;           // (n, S, h, Dh)                                        expensive
  Tensor lse;            // (n, h, S) f32                                        expensive
  Tensor y1;             // (n, S, D) proj output before LayerScale (dgamma_1)   expensive
  Tensor x_mid;          // (n, S, D) residual after attention                   expensive
  Tensor mean2, rstd2;   // (n S) f32                                            expensive
  Tensor h2;             // (n, S, D)                                            cheap
  Tensor pre_gelu;       // (n, S, m) fc1 output                                 cheap
  Tensor hidden;         // (n, S, m) gelu output                                cheap
  Tensor y2;             // (n, S, D) fc2 output before LayerScale (dgamma_2)    expensive
  Tensor scaled;         // (n, S, D) a branch output times gamma                scratch

  // Allocates `part`'s fields onto a copy of `onto` (a block's saved tensors onto the shared workspace).
  template <typename Alloc>
  static VisionBlockActivations allocate(Alloc& alloc, const VisionBlockDims& d, DType dtype, ActivationPart part,
                                         VisionBlockActivations onto = {}) {
    using enum ActivationTier;
    VisionBlockActivations a = onto;
    const Shape tokens{d.tiles, d.seq, d.dim}, heads{d.tiles, d.seq, d.heads, d.head_dim};
    const Shape stats{d.tiles * d.seq}, mlp{d.tiles, d.seq, d.mlp};
    const auto field = [&](Tensor& f, ActivationTier tier, bool backward_only, const Shape& shape, DType type) {
      if (part.includes(tier, backward_only)) f = alloc.alloc(shape, type);
    };
    field(a.x, kInput, true, tokens, dtype);
    field(a.mean1, kExpensive, true, stats, DType::kF32);
    field(a.rstd1, kExpensive, true, stats, DType::kF32);
    field(a.lse, kExpensive, true, {d.tiles, d.heads, d.seq}, DType::kF32);
    field(a.x_mid, kExpensive, true, tokens, dtype);
    field(a.mean2, kExpensive, true, stats, DType::kF32);
    field(a.rstd2, kExpensive, true, stats, DType::kF32);
    field(a.h1, kCheap, false, tokens, dtype);
    field(a.qk, kScratch, false, heads, dtype);
    field(a.q, kExpensive, false, heads, dtype);
    field(a.k, kExpensive, false, heads, dtype);
    field(a.v, kExpensive, false, heads, dtype);
    field(a.attn, kExpensive, false, heads, dtype);
    field(a.y1, kExpensive, false, tokens, dtype);
    field(a.h2, kCheap, false, tokens, dtype);
    field(a.pre_gelu, kCheap, false, mlp, dtype);
    field(a.hidden, kCheap, false, mlp, dtype);
    field(a.y2, kExpensive, false, tokens, dtype);
    field(a.scaled, kScratch, false, tokens, dtype);
    return a;
  }
};

// x (n, S, D) is updated in place. rope_cos/sin: (S - prefix, Dh / 2) f32.
void vision_block_forward(const VisionBlock& block, VisionBlockActivations& a, Tensor x, Tensor rope_cos,
                          Tensor rope_sin, const VisionBlockDims& dims, distributed::Communicator& tp, Stream s = {});

// Rebuilds what `recompute` did not keep of the block's activations (a: its saved tensors over the shared
// workspace) from the saved ones, bitwise as the forward made them; scratch holds a copy of the input under
// full recomputation.
void vision_block_recompute(const VisionBlock& block, const VisionBlockActivations& a, Recompute recompute,
                            Tensor rope_cos, Tensor rope_sin, const VisionBlockDims& dims,
                            distributed::Communicator& tp, Arena& scratch, Stream s = {});

// dx: gradient w.r.t. the block output on entry, w.r.t. its input on return.
void vision_block_backward(const VisionBlock& block, const VisionBlock& grad, const VisionBlockActivations& a,
                           Tensor dx, Tensor rope_cos, Tensor rope_sin, const VisionBlockDims& dims,
                           distributed::Communicator& tp, Arena& scratch, Stream s = {});

}  // namespace plm::model
