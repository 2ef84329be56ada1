#include "model/vision/vision_block.h"

#include "core/check.h"
#include "core/kernels/ops.h"
#include "distributed/tp_regions.h"

namespace plm::model {

namespace {

// x += gamma * branch (or x += branch without LayerScale); scaled is scratch.
void add_scaled_branch(Tensor x, Tensor branch, Tensor gamma, Tensor scaled, Stream s) {
  if (gamma.defined()) {
    mul_rowwise(scaled.as_matrix(), branch.as_matrix(), gamma, s);
    add(x, x, scaled, s);
  } else {
    add(x, x, branch, s);
  }
}

// The gradient reaching a branch's output from dx (the residual grad): dgamma += sum(dx * branch) per
// channel and dbranch = dx * gamma, or dbranch = dx without LayerScale. Returns dbranch.
Tensor branch_grad(Tensor dx, Tensor branch, Tensor gamma, Tensor dgamma, Tensor scratch, Stream s) {
  if (!gamma.defined()) return dx;
  if (dgamma.defined()) {
    mul(scratch, dx, branch, s);
    sum_rows(dgamma, scratch.as_matrix(), /*accumulate=*/true, s);
  }
  mul_rowwise(scratch.as_matrix(), dx.as_matrix(), gamma, s);
  return scratch;
}

// The MLP up to its activation: h2 = norm2(x) (mean, rstd when defined), pre_gelu, hidden.
void mlp_up_to_gelu(const VisionBlock& b, const VisionBlockActivations& a, Tensor x, Tensor mean, Tensor rstd,
                    Stream s) {
  b.norm2.forward(a.h2, mean, rstd, x, s);
  // copy_to_tp(h2): identity forward.
  b.fc1.forward(a.pre_gelu, a.h2, s);
  gelu_forward(a.hidden, a.pre_gelu, s);
}

}  // namespace

void vision_block_forward(const VisionBlock& b, VisionBlockActivations& a, Tensor x, Tensor rope_cos, Tensor rope_sin,
                          const VisionBlockDims& d, distributed::Communicator& tp, Stream s) {
  if (a.x.defined()) copy_tensor(a.x, x, s);
  b.norm1.forward(a.h1, a.mean1, a.rstd1, x, s);
  // copy_to_tp(h1): identity forward.
  b.q().forward(a.qk, a.h1, s);
  vision_rope_forward(a.q, a.qk, rope_cos, rope_sin, d.num_prefix_tokens, s);
  b.k().forward(a.qk, a.h1, s);
  vision_rope_forward(a.k, a.qk, rope_cos, rope_sin, d.num_prefix_tokens, s);
  b.v().forward(a.v, a.h1, s);
  // The attention computes as the block's GEMMs do (bf16 in the CPU bf16 compute mode).
  attention_forward(a.attn, a.lse, a.q, a.k, a.v, {.causal = false, .compute = b.proj.compute}, s);
  b.proj.forward(a.y1, a.attn, s);
  distributed::reduce_from_tp_forward(a.y1, tp, s);
  add_scaled_branch(x, a.y1, b.gamma1, a.scaled, s);
  if (a.x_mid.defined()) copy_tensor(a.x_mid, x, s);

  mlp_up_to_gelu(b, a, x, a.mean2, a.rstd2, s);
  b.fc2.forward(a.y2, a.hidden, s);
  distributed::reduce_from_tp_forward(a.y2, tp, s);
  add_scaled_branch(x, a.y2, b.gamma2, a.scaled, s);
}

void vision_block_recompute(const VisionBlock& b, const VisionBlockActivations& a, Recompute recompute,
                            Tensor rope_cos, Tensor rope_sin, const VisionBlockDims& d, distributed::Communicator& tp,
                            Arena& scratch, Stream s) {
  switch (recompute) {
    case Recompute::kNone: return;
    case Recompute::kSelective:
      b.norm1.forward(a.h1, a.x, s);
      mlp_up_to_gelu(b, a, a.x_mid, Tensor(), Tensor(), s);
      return;
    case Recompute::kFull:
      rerun_block_forward(a, scratch, s, [&](VisionBlockActivations& rebuilt, Tensor x) {
        vision_block_forward(b, rebuilt, x, rope_cos, rope_sin, d, tp, s);
      });
      return;
  }
  PLM_CHECK(false) << "unhandled Recompute " << static_cast<int>(recompute);
}

void vision_block_backward(const VisionBlock& b, const VisionBlock& g, const VisionBlockActivations& a, Tensor dx,
                           Tensor rope_cos, Tensor rope_sin, const VisionBlockDims& d, distributed::Communicator& tp,
                           Arena& scratch, Stream s) {
  const size_t mark = scratch.mark();
  const DType dtype = dx.dtype();
  const Tensor dbranch_scratch = scratch.alloc(dx.shape(), dtype);
  const Tensor dh = scratch.alloc(dx.shape(), dtype), dnorm = scratch.alloc(dx.shape(), dtype);

  // MLP block.
  const Tensor dy2 = branch_grad(dx, a.y2, b.gamma2, g.gamma2, dbranch_scratch, s);
  const Tensor dhidden = scratch.alloc(a.hidden.shape(), dtype);
  b.fc2.backward(dhidden, g.fc2, dy2, a.hidden, {}, s);
  gelu_backward(dhidden, dhidden, a.pre_gelu, s);
  b.fc1.backward(dh, g.fc1, dhidden, a.h2, {}, s);
  distributed::copy_to_tp_backward(dh, tp, s);
  b.norm2.backward(dnorm, g.norm2, dh, a.x_mid, a.mean2, a.rstd2, s);
  add(dx, dx, dnorm, s);

  // Attention block.
  const Tensor dy1 = branch_grad(dx, a.y1, b.gamma1, g.gamma1, dbranch_scratch, s);
  const Tensor dattn = scratch.alloc(a.attn.shape(), dtype);
  const Tensor dq = scratch.alloc(a.q.shape(), dtype), dk = scratch.alloc(a.k.shape(), dtype);
  const Tensor dv = scratch.alloc(a.v.shape(), dtype), dqk = scratch.alloc(a.qk.shape(), dtype);
  b.proj.backward(dattn, g.proj, dy1, a.attn, {}, s);
  attention_backward(dq, dk, dv, dattn, a.q, a.k, a.v, a.attn, a.lse, {.causal = false}, s);
  const Linear gq = g.qkv.weight.defined() ? g.q() : Linear{}, gk = g.qkv.weight.defined() ? g.k() : Linear{};
  const Linear gv = g.qkv.weight.defined() ? g.v() : Linear{};
  vision_rope_backward(dqk, dq, rope_cos, rope_sin, d.num_prefix_tokens, s);
  b.q().backward(dh, gq, dqk, a.h1, {}, s);
  vision_rope_backward(dqk, dk, rope_cos, rope_sin, d.num_prefix_tokens, s);
  b.k().backward(dh, gk, dqk, a.h1, {.accumulate_dx = true}, s);
  b.v().backward(dh, gv, dv, a.h1, {.accumulate_dx = true}, s);
  distributed::copy_to_tp_backward(dh, tp, s);
  b.norm1.backward(dnorm, g.norm1, dh, a.x, a.mean1, a.rstd1, s);
  add(dx, dx, dnorm, s);
  scratch.release_to(mark);
}

}  // namespace plm::model
