// Activation recomputation per block (decoder layer, vision block): which of a block's forward tensors
// live until its backward and which are rebuilt right before it. A block's tensors fall into tiers, from
// the most to the least worth keeping; a policy keeps a prefix of them per block and puts the rest in one
// workspace that every block of the stack shares (forward scratch, refilled before each block's backward).
//   none:      keeps input, expensive and cheap tensors         per block: everything but scratch
//   selective: keeps input and expensive (attention) tensors    rebuilds the norm outputs and the MLP's
//                                                               wide intermediates from them
//   full:      keeps the block input only                       reruns the block's forward
// The rebuilt tensors equal the originals bitwise (the same kernels on the same inputs), so the gradients
// do not depend on the policy. Memory per stack of L blocks: L * saved(policy) + workspace(policy), with the
// tiers (e = dtype bytes, f32 statistics; each tensor padded to Arena::kAlignment; tests/model/recompute_test.cc):
//   decoder layer, T tokens:  input T H e | expensive (2 T + T h) 4 + (T H + 2 T h Dh + 2 T k Dh) e
//                             cheap (2 T H + 3 T f) e | scratch T H e
//   vision block, N = n S:    input N D e | expensive (4 N + N h) 4 + (3 N D + 4 N h Dh) e
//                             cheap (2 N D + 2 N m) e | scratch (N D + N h Dh) e
// e.g. PLM-1B in bf16 per token and layer: none 74.1 KiB, selective 18.1 KiB, full 4 KiB (+ one layer's rest).
#pragma once

#include <string_view>

#include "core/arena.h"
#include "core/kernels/ops.h"
#include "core/tensor.h"

namespace plm::model {

enum class Recompute { kNone, kSelective, kFull };

std::string_view recompute_text(Recompute recompute);  // "none", "selective", "full"

// A block activation's tier. kInput: the block's input (residual stream); kExpensive: what costs a GEMM or
// the attention to rebuild, or feeds a LayerScale gradient; kCheap: norm outputs and MLP intermediates
// (rebuilt by norms, the MLP's first GEMMs and the activation); kScratch: never read by the backward.
enum class ActivationTier { kInput, kExpensive, kCheap, kScratch };

// Which of a block's tensors one allocation covers: everything inference touches (no saved statistics),
// the tensors `recompute` saves per block, or the shared workspace (the complement of the saved ones).
struct ActivationPart {
  enum class Kind { kInference, kSaved, kWorkspace };
  Kind kind = Kind::kInference;
  Recompute recompute = Recompute::kNone;

  static ActivationPart inference() { return {Kind::kInference, Recompute::kNone}; }
  static ActivationPart saved(Recompute r) { return {Kind::kSaved, r}; }
  static ActivationPart workspace(Recompute r) { return {Kind::kWorkspace, r}; }

  // backward_only: a tensor only the backward reads (the block input, norm statistics, lse, ...).
  bool includes(ActivationTier tier, bool backward_only) const;
};

// Full recomputation of one block: forward(rebuilt, x) reruns the block's forward on a scratch copy x of the
// saved input a.x (the forward updates its input in place), with rebuilt = a less its x, so the saved input
// is not rewritten.
template <typename Activations, typename Forward>
void rerun_block_forward(const Activations& a, Arena& scratch, Stream s, Forward&& forward) {
  const size_t mark = scratch.mark();
  const Tensor x = scratch.alloc(a.x.shape(), a.x.dtype());
  copy_tensor(x, a.x, s);
  Activations rebuilt = a;
  rebuilt.x = Tensor();
  forward(rebuilt, x);
  scratch.release_to(mark);
}

}  // namespace plm::model
