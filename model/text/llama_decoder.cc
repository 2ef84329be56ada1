#include "model/text/llama_decoder.h"

#include "core/kernels/cpu/gemm_bf16_packed.h"

#include <algorithm>

#include "core/kernels/ops.h"
#include "core/kernels/rope_tables.h"
#include "core/status_macros.h"
#include "distributed/single_rank_communicator.h"
#include "distributed/tp_regions.h"
#include "model/layers/vocab_parallel_cross_entropy.h"

namespace plm::model {

namespace {

absl::StatusOr<RmsNorm> load_rmsnorm(const WeightLoader& loader, const std::string& name, double eps) {
  RmsNorm norm;
  PLM_ASSIGN_OR_RETURN(norm.weight, loader.tensor(name));
  norm.eps = static_cast<float>(eps);
  return norm;
}

}  // namespace

absl::StatusOr<LlamaDecoder> LlamaDecoder::load(const TextConfig& config, const WeightLoader& loader,
                                                const std::string& lm_head_name, const ModelParallel& parallel) {
  LlamaDecoder d;
  d.config_ = config;
  d.tp_ = &parallel.tp_group();
  const int tp = parallel.tp_size(), r = parallel.tp_rank();
  d.local_heads_ = config.num_heads / tp;
  d.local_ffn_ = config.intermediate_size / tp;
  // KV heads: split when tp divides them, else each rank holds the one its query heads use.
  const int kv_parts = std::min(tp, config.num_kv_heads);
  const int kv_part = r / (tp / kv_parts);
  d.local_kv_heads_ = config.num_kv_heads / kv_parts;
  if (kv_parts < tp) {
    d.kv_replicas_owned_ = d.tp_->split(kv_part, r, "tp_kv_replicas");
    d.kv_replicas_ = d.kv_replicas_owned_.get();
  } else {
    d.kv_replicas_ = &distributed::single_rank_group();
  }
  const int64_t vocab_shard = config.vocab_size / tp;
  d.vocab_start_ = r * vocab_shard;
  d.head_compute_ = loader.compute();
  const auto [first, last] = parallel.stage_layer_counts.empty()
                                 ? stage_layers(config.num_layers, parallel.pp_rank(), parallel.pp_size())
                                 : stage_layers(parallel.stage_layer_counts, parallel.pp_rank());
  DecoderWeights& w = d.weights_;
  w.first_layer = first;
  if (parallel.first_stage()) {
    PLM_ASSIGN_OR_RETURN(w.embed_tokens, loader.matrix_part(kEmbedTokensName, 0, r, tp));
  }
  if (parallel.last_stage()) {
    // One tensor (and one gradient) when the head is the embedding of this very stage.
    w.lm_head_tied = lm_head_name == kEmbedTokensName && parallel.first_stage();
    w.lm_head_copies_embedding = lm_head_name == kEmbedTokensName && !parallel.first_stage();
    if (w.lm_head_tied) {
      w.lm_head = w.embed_tokens;
    } else {
      PLM_ASSIGN_OR_RETURN(w.lm_head, loader.matrix_part(lm_head_name, 0, r, tp));
    }
    PLM_ASSIGN_OR_RETURN(w.norm, load_rmsnorm(loader, text_name("norm.weight"), config.rms_norm_eps));
  }
  for (int l = first; l < last; ++l) {
    DecoderLayer layer;
    const auto name = [l](const std::string& suffix) { return text_layer_name(l, suffix); };
    PLM_ASSIGN_OR_RETURN(layer.input_norm, load_rmsnorm(loader, name("input_layernorm.weight"), config.rms_norm_eps));
    PLM_ASSIGN_OR_RETURN(layer.post_attention_norm,
                         load_rmsnorm(loader, name("post_attention_layernorm.weight"), config.rms_norm_eps));
    PLM_ASSIGN_OR_RETURN(layer.q_proj, loader.linear_part(name("self_attn.q_proj."), 0, r, tp));
    PLM_ASSIGN_OR_RETURN(layer.k_proj, loader.linear_part(name("self_attn.k_proj."), 0, kv_part, kv_parts));
    PLM_ASSIGN_OR_RETURN(layer.v_proj, loader.linear_part(name("self_attn.v_proj."), 0, kv_part, kv_parts));
    PLM_ASSIGN_OR_RETURN(layer.o_proj, loader.linear_part(name("self_attn.o_proj."), 1, r, tp));
    PLM_ASSIGN_OR_RETURN(layer.gate_proj, loader.linear_part(name("mlp.gate_proj."), 0, r, tp));
    PLM_ASSIGN_OR_RETURN(layer.up_proj, loader.linear_part(name("mlp.up_proj."), 0, r, tp));
    PLM_ASSIGN_OR_RETURN(layer.down_proj, loader.linear_part(name("mlp.down_proj."), 1, r, tp));
    w.layers.push_back(std::move(layer));
  }
  const std::vector<float> inv_freq = rope_inv_freq(config.head_dim, config.rope_theta, config.rope_scaling);
  OwnedTensor host({static_cast<int64_t>(inv_freq.size())}, DType::kF32);
  std::copy(inv_freq.begin(), inv_freq.end(), host.data_as<float>());
  d.inv_freq_ = to_device(host, loader.device());
  return d;
}

DecoderLayerDims LlamaDecoder::layer_dims() const {
  return {.hidden = config_.hidden_size, .heads = local_heads_, .kv_heads = local_kv_heads_,
          .head_dim = config_.head_dim, .ffn = local_ffn_};
}

KvLayout LlamaDecoder::kv_layout() const {
  return {.num_layers = static_cast<int>(weights_.layers.size()), .num_kv_heads = local_kv_heads_,
          .head_dim = config_.head_dim};
}

OwnedTensor LlamaDecoder::positions(const TokenBatch& batch, Device device) {
  std::vector<int32_t> positions;
  positions.reserve(static_cast<size_t>(batch.num_tokens()));
  for (const SequenceChunk& c : batch.chunks) {
    for (int64_t i = 0; i < c.length; ++i) positions.push_back(static_cast<int32_t>(c.start + i));
  }
  return to_device(host_i32(positions), device);
}

void LlamaDecoder::pack_head_panels() {
  Tensor& w = weights_.lm_head;
  if (weights_.lm_head_panels || !w.defined() || w.is_cuda() || w.dtype() != DType::kBF16 ||
      head_compute_ != DType::kBF16 || !cpu::cpu_has_avx512_bf16() || !w.is_contiguous() ||
      !cpu::weight_panels_fit(w.size(0), w.size(1))) {
    return;
  }
  cpu::pack_weight_panels(w.data_as<bf16>(), w.size(0), w.size(1));
  weights_.lm_head_panels = true;
}

void LlamaDecoder::embed(Tensor out, Tensor ids, Stream s) const {
  if (weights_.lm_head_panels && weights_.lm_head_tied) {
    cpu::embedding_forward_weight_panels(out, ids, weights_.embed_tokens, vocab_start_);
  } else {
    embedding_forward(out, ids, weights_.embed_tokens, vocab_start_, s);
  }
  distributed::reduce_from_tp_forward(out, *tp_, s);
}

void LlamaDecoder::forward_layers(Tensor hidden, Tensor positions, KvCache& cache, const KvStep& step,
                                  Tracer* tracer, Stream s) const {
  PLM_CHECK_EQ(hidden.size(0), step.slots.numel());
  PLM_CHECK_EQ(cache.layout().num_layers, static_cast<int>(weights_.layers.size())) << "KV cache of another stage";
  const KvCacheAttention attention(cache, step);
  // One layer's scratch, reused by every layer.
  const int64_t t = hidden.size(0);
  ArenaSizer sizer;
  DecoderLayerActivations::allocate(sizer, t, layer_dims(), hidden.dtype(), ActivationPart::inference());
  Arena arena(sizer.bytes() + adapter_scratch_bytes(t), hidden.device());
  DecoderLayerActivations scratch =
      DecoderLayerActivations::allocate(arena, t, layer_dims(), hidden.dtype(), ActivationPart::inference());
  const LoraPass lora{.scratch = &arena, .row_keys = Tensor()};  // adapters, if any, without dropout
  for (size_t i = 0; i < weights_.layers.size(); ++i) {
    const int index = static_cast<int>(i);
    decoder_layer_forward(weights_.layers[i], scratch, hidden, positions, inv_freq_, attention, index, *tp_, lora,
                          s);
    trace(tracer, hidden, "text.layers", first_layer() + index);
  }
}

void LlamaDecoder::head(Tensor logits, Tensor normed, Tensor hidden, Stream s) const {
  weights_.norm.forward(normed, hidden, s);
  if (!logits.defined()) return;
  if (tp_->size() == 1) {
    matmul(logits, normed, weights_.lm_head,
           {.trans_b = true, .compute = head_compute_, .b_panels = weights_.lm_head_panels}, s);
    return;
  }
  OwnedTensor local({logits.size(0), weights_.lm_head.size(0)}, logits.dtype(), logits.device());
  matmul(local, normed, weights_.lm_head,
         {.trans_b = true, .compute = head_compute_, .b_panels = weights_.lm_head_panels}, s);
  distributed::gather_tp_blocks(logits, local, *tp_, s);
}

namespace {

// Sizes (ArenaSizer) or allocates (Arena) the workspace, then each layer's saved tensors onto it.
template <typename Alloc>
DecoderActivations allocate_layers(Alloc& alloc, size_t num_layers, int64_t tokens, const DecoderLayerDims& dims,
                                   DType dtype, Recompute recompute) {
  DecoderActivations acts;
  acts.recompute = recompute;
  const DecoderLayerActivations workspace =
      DecoderLayerActivations::allocate(alloc, tokens, dims, dtype, ActivationPart::workspace(recompute));
  for (size_t i = 0; i < num_layers; ++i) {
    acts.layers.push_back(
        DecoderLayerActivations::allocate(alloc, tokens, dims, dtype, ActivationPart::saved(recompute), workspace));
  }
  return acts;
}

}  // namespace

DecoderActivations LlamaDecoder::allocate_activations(Arena& arena, int64_t tokens, DType dtype,
                                                      Recompute recompute) const {
  return allocate_layers(arena, weights_.layers.size(), tokens, layer_dims(), dtype, recompute);
}

size_t LlamaDecoder::activation_bytes(int64_t tokens, DType dtype, Recompute recompute) const {
  ArenaSizer sizer;
  allocate_layers(sizer, weights_.layers.size(), tokens, layer_dims(), dtype, recompute);
  return sizer.bytes();
}

size_t LlamaDecoder::adapter_scratch_bytes(int64_t tokens) const {
  size_t bytes = 0;
  for (const DecoderLayer& layer : weights_.layers) bytes = std::max(bytes, layer.adapter_scratch_bytes(tokens));
  return bytes;
}

void LlamaDecoder::forward_layers_train(Tensor hidden, Tensor positions, const PackedCausalAttention& attention,
                                        DecoderActivations& acts, const LoraPass& lora, Stream s) const {
  PLM_CHECK_EQ(acts.layers.size(), weights_.layers.size());
  for (size_t i = 0; i < weights_.layers.size(); ++i) {
    decoder_layer_forward(weights_.layers[i], acts.layers[i], hidden, positions, inv_freq_, attention,
                          static_cast<int>(i), *tp_, lora, s);
  }
}

void LlamaDecoder::backward_layers(const DecoderWeights& grad, const DecoderActivations& acts, Tensor dhidden,
                                   Tensor positions, const PackedCausalAttention& attention, Arena& scratch,
                                   Tensor lora_row_keys, Stream s, const std::function<void(int)>& layer_done) const {
  PLM_CHECK_EQ(acts.layers.size(), weights_.layers.size());
  for (size_t i = weights_.layers.size(); i-- > 0;) {
    const DecoderLayer& layer = weights_.layers[i];
    decoder_layer_recompute(layer, acts.layers[i], acts.recompute, positions, inv_freq_, attention,
                            static_cast<int>(i), *tp_, scratch, lora_row_keys, s);
    decoder_layer_backward(layer, grad.layers[i], acts.layers[i], dhidden, positions, inv_freq_, attention, *tp_,
                           *kv_replicas_, scratch, lora_row_keys, s);
    if (layer_done) layer_done(weights_.first_layer + static_cast<int>(i));
  }
}

HeadActivations LlamaDecoder::head_loss_forward(Arena& arena, Tensor hidden, Tensor rows, Tensor targets,
                                                Stream s) const {
  const int64_t t = hidden.size(0), h = hidden.size(1), n = rows.size(0);
  PLM_CHECK_EQ(targets.size(0), n) << "one target per labelled row";
  PLM_CHECK(!weights_.lm_head_panels) << "a loss on an LM head packed for inference (weight panels)";
  HeadActivations a;
  a.x = arena.alloc({t, h}, hidden.dtype());
  a.rstd = arena.alloc({t}, DType::kF32);
  a.normed = arena.alloc({t, h}, hidden.dtype());
  a.rows = rows;
  a.selected = arena.alloc({n, h}, hidden.dtype());
  a.lse = arena.alloc({n}, DType::kF32);
  a.loss = arena.alloc({n}, DType::kF32);
  copy_tensor(a.x, hidden, s);
  weights_.norm.forward(a.normed, a.rstd, a.x, s);
  if (n == 0) return a;  // on every TP rank alike: the ranks see the same batch
  embedding_forward(a.selected, rows, a.normed, 0, s);  // a row gather
  vocab_parallel_cross_entropy_forward(a.loss, a.lse, a.selected, weights_.lm_head, targets, *tp_,
                                       {.vocab_start = vocab_start_, .compute = head_compute_}, s);
  return a;
}

void LlamaDecoder::head_loss_backward(const DecoderWeights& grad, const HeadActivations& a, Tensor dhidden,
                                      Tensor dloss, Tensor targets, Arena& scratch, Stream s) const {
  const size_t mark = scratch.mark();
  const Tensor dnormed = scratch.alloc(a.normed.shape(), a.normed.dtype());
  fill(dnormed, 0.0f, s);
  if (a.rows.size(0) > 0) {
    const Tensor dselected = scratch.alloc(a.selected.shape(), a.selected.dtype());
    vocab_parallel_cross_entropy_backward(dselected, grad.lm_head, dloss, a.selected, weights_.lm_head, targets, a.lse,
                                          *tp_, {.vocab_start = vocab_start_, .compute = head_compute_}, s);
    embedding_backward(dnormed, a.rows, dselected, 0, s);  // the gather's backward: a row scatter
  }
  weights_.norm.backward(dhidden, grad.norm, dnormed, a.x, a.rstd, s);
  scratch.release_to(mark);
}

void LlamaDecoder::embed_backward(const DecoderWeights& grad, Tensor ids, Tensor dout, Stream s) const {
  // reduce_from_tp's backward is the identity: every rank scatters the full dout into its vocab shard.
  if (grad.embed_tokens.defined()) embedding_backward(grad.embed_tokens, ids, dout, vocab_start_, s);
}

}  // namespace plm::model
