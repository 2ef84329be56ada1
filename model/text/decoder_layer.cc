#include "model/text/decoder_layer.h"

#include <algorithm>

#include "core/check.h"
#include "core/kernels/ops.h"
#include "distributed/tp_regions.h"

namespace plm::model {

size_t DecoderLayer::adapter_scratch_bytes(int64_t tokens) const {
  size_t bytes = 0;
  for (const Linear* p : {&q_proj, &k_proj, &v_proj, &o_proj, &gate_proj, &up_proj, &down_proj}) {
    bytes = std::max(bytes, lora_scratch_bytes(*p, tokens));
  }
  return bytes;
}

namespace {

// The MLP up to its activation: h2 = post_attention_norm(x) (rstd when defined), gate, up, act.
void mlp_up_to_act(const DecoderLayer& layer, const DecoderLayerActivations& a, Tensor x, Tensor rstd,
                   const LoraPass& lora, Stream s) {
  layer.post_attention_norm.forward(a.h2, rstd, x, s);
  // copy_to_tp(h2): identity forward.
  layer.gate_proj.forward(a.gate, a.h2, lora, s);
  layer.up_proj.forward(a.up, a.h2, lora, s);
  swiglu_forward(a.act, a.gate, a.up, s);
}

}  // namespace

void decoder_layer_forward(const DecoderLayer& layer, DecoderLayerActivations& a, Tensor x, Tensor positions,
                           Tensor inv_freq, const AttentionCore& attention, int layer_index,
                           distributed::Communicator& tp, const LoraPass& lora, Stream s) {
  if (a.x.defined()) copy_tensor(a.x, x, s);
  layer.input_norm.forward(a.h1, a.rstd1, x, s);
  // copy_to_tp(h1): identity forward.
  layer.q_proj.forward(a.q, a.h1, lora, s);
  layer.k_proj.forward(a.k, a.h1, lora, s);
  layer.v_proj.forward(a.v, a.h1, lora, s);
  rope_forward(a.q, a.q, positions, inv_freq, s);
  rope_forward(a.k, a.k, positions, inv_freq, s);
  attention.forward(a.attn, a.lse, a.q, a.k, a.v, layer_index, s);
  layer.o_proj.forward(a.y, a.attn, lora, s);
  distributed::reduce_from_tp_forward(a.y, tp, s);
  add(x, x, a.y, s);
  if (a.x_mid.defined()) copy_tensor(a.x_mid, x, s);

  mlp_up_to_act(layer, a, x, a.rstd2, lora, s);
  layer.down_proj.forward(a.y, a.act, lora, s);
  distributed::reduce_from_tp_forward(a.y, tp, s);
  add(x, x, a.y, s);
}

void decoder_layer_recompute(const DecoderLayer& layer, const DecoderLayerActivations& a, Recompute recompute,
                             Tensor positions, Tensor inv_freq, const AttentionCore& attention, int layer_index,
                             distributed::Communicator& tp, Arena& scratch, Tensor lora_row_keys, Stream s) {
  // The forward's dropout keys draw the forward's masks again.
  const LoraPass lora{.scratch = &scratch, .row_keys = lora_row_keys};
  switch (recompute) {
    case Recompute::kNone: return;
    case Recompute::kSelective:
      layer.input_norm.forward(a.h1, a.x, s);
      mlp_up_to_act(layer, a, a.x_mid, Tensor(), lora, s);
      return;
    case Recompute::kFull:
      rerun_block_forward(a, scratch, s, [&](DecoderLayerActivations& rebuilt, Tensor x) {
        decoder_layer_forward(layer, rebuilt, x, positions, inv_freq, attention, layer_index, tp, lora, s);
      });
      return;
  }
  PLM_CHECK(false) << "unhandled Recompute " << static_cast<int>(recompute);
}

void decoder_layer_backward(const DecoderLayer& layer, const DecoderLayer& grad, const DecoderLayerActivations& a,
                            Tensor dx, Tensor positions, Tensor inv_freq, const PackedCausalAttention& attention,
                            distributed::Communicator& tp, distributed::Communicator& kv_replicas, Arena& scratch,
                            Tensor lora_row_keys, Stream s) {
  const size_t mark = scratch.mark();
  const LoraPass lora{.scratch = &scratch, .row_keys = lora_row_keys};
  const int64_t t = dx.size(0), ffn = a.gate.size(1);
  const DType dtype = dx.dtype();
  const Tensor dh = scratch.alloc({t, dx.size(1)}, dtype);
  const Tensor dnorm = scratch.alloc({t, dx.size(1)}, dtype);

  // MLP block. reduce_from_tp's backward is the identity: dx is the gradient of the branch output.
  const Tensor dact = scratch.alloc({t, ffn}, dtype);
  const Tensor dgate = scratch.alloc({t, ffn}, dtype), dup = scratch.alloc({t, ffn}, dtype);
  layer.down_proj.backward(dact, grad.down_proj, dx, a.act, {}, lora, s);
  swiglu_backward(dgate, dup, dact, a.gate, a.up, s);
  layer.gate_proj.backward(dh, grad.gate_proj, dgate, a.h2, {}, lora, s);
  layer.up_proj.backward(dh, grad.up_proj, dup, a.h2, {.accumulate_dx = true}, lora, s);
  distributed::copy_to_tp_backward(dh, tp, s);
  layer.post_attention_norm.backward(dnorm, grad.post_attention_norm, dh, a.x_mid, a.rstd2, s);
  add(dx, dx, dnorm, s);

  // Attention block.
  const Tensor dattn = scratch.alloc(a.attn.shape(), dtype);
  const Tensor dq = scratch.alloc(a.q.shape(), dtype);
  const Tensor dk = scratch.alloc(a.k.shape(), dtype), dv = scratch.alloc(a.v.shape(), dtype);
  layer.o_proj.backward(dattn, grad.o_proj, dx, a.attn, {}, lora, s);
  attention.backward(dq, dk, dv, dattn, a.q, a.k, a.v, a.attn, a.lse, s);
  rope_backward(dq, dq, positions, inv_freq, s);
  rope_backward(dk, dk, positions, inv_freq, s);
  distributed::copy_to_tp_backward(dk, kv_replicas, s);
  distributed::copy_to_tp_backward(dv, kv_replicas, s);
  const Tensor dh_kv = kv_replicas.rank() == 0 ? dh : Tensor();
  layer.q_proj.backward(dh, grad.q_proj, dq, a.h1, {}, lora, s);
  layer.k_proj.backward(dh_kv, grad.k_proj, dk, a.h1, {.accumulate_dx = true}, lora, s);
  layer.v_proj.backward(dh_kv, grad.v_proj, dv, a.h1, {.accumulate_dx = true}, lora, s);
  distributed::copy_to_tp_backward(dh, tp, s);
  layer.input_norm.backward(dnorm, grad.input_norm, dh, a.x, a.rstd1, s);
  add(dx, dx, dnorm, s);
  scratch.release_to(mark);
}

}  // namespace plm::model
