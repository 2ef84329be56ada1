#include "model/text/llama_decoder.h"

#include <numeric>

#include "core/kernels/ops.h"
#include "core/kernels/rope_tables.h"
#include "core/status_macros.h"
#include "distributed/tp_regions.h"
#include "model/weights/hf_names.h"

namespace plm::model {

namespace {

absl::StatusOr<RmsNorm> load_rmsnorm(const WeightLoader& loader, const std::string& name, double eps) {
  RmsNorm norm;
  PLM_ASSIGN_OR_RETURN(norm.weight, loader.tensor(name));
  norm.eps = static_cast<float>(eps);
  return norm;
}

OwnedTensor host_i32(const std::vector<int32_t>& values) {
  OwnedTensor t({static_cast<int64_t>(values.size())}, DType::kI32);
  std::copy(values.begin(), values.end(), t.data_as<int32_t>());
  return t;
}

// Decode of slots 0..B-1, one token each: one batched attention call over the cache.
bool is_dense_decode(const TokenBatch& batch) {
  for (size_t i = 0; i < batch.chunks.size(); ++i) {
    if (batch.chunks[i].length != 1 || batch.chunks[i].slot != static_cast<int>(i)) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<LlamaDecoder> LlamaDecoder::load(const TextConfig& config, const WeightLoader& loader,
                                                const std::string& lm_head_name, const ModelParallel& parallel) {
  LlamaDecoder d;
  d.config_ = config;
  d.tp_ = parallel.tp_size() > 1 ? parallel.tp : nullptr;
  const int tp = parallel.tp_size(), r = parallel.tp_rank();
  d.local_heads_ = config.num_heads / tp;
  d.local_ffn_ = config.intermediate_size / tp;
  // KV heads: split when tp divides them, else each rank holds the one its query heads use.
  const int kv_parts = std::min(tp, config.num_kv_heads);
  const int kv_part = r / (tp / kv_parts);
  d.local_kv_heads_ = config.num_kv_heads / kv_parts;
  const int64_t vocab_shard = config.vocab_size / tp;
  d.vocab_start_ = r * vocab_shard;
  const auto [first, last] = parallel.stage_layer_counts.empty()
                                 ? stage_layers(config.num_layers, parallel.pp_rank(), parallel.pp_size())
                                 : stage_layers(parallel.stage_layer_counts, parallel.pp_rank());
  d.first_layer_ = first;

  if (parallel.first_stage()) {
    PLM_ASSIGN_OR_RETURN(d.embed_tokens_, loader.matrix_part(kEmbedTokensName, 0, r, tp));
  }
  if (parallel.last_stage()) {
    PLM_ASSIGN_OR_RETURN(d.lm_head_, loader.matrix_part(lm_head_name, 0, r, tp));
    PLM_ASSIGN_OR_RETURN(d.norm_, load_rmsnorm(loader, text_name("norm.weight"), config.rms_norm_eps));
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
    d.layers_.push_back(std::move(layer));
  }
  const std::vector<float> inv_freq = rope_inv_freq(config.head_dim, config.rope_theta, config.rope_scaling);
  OwnedTensor host({static_cast<int64_t>(inv_freq.size())}, DType::kF32);
  std::copy(inv_freq.begin(), inv_freq.end(), host.data_as<float>());
  d.inv_freq_ = to_device(host, loader.device());
  return d;
}

std::unique_ptr<KvCache> LlamaDecoder::make_cache(int num_slots, int64_t max_len, DType dtype, Device device) const {
  TextConfig local = config_;
  local.num_layers = static_cast<int>(layers_.size());
  local.num_kv_heads = local_kv_heads_;
  return std::make_unique<KvCache>(local, num_slots, max_len, dtype, device);
}

void LlamaDecoder::embed(Tensor out, Tensor ids, Stream s) const {
  embedding_forward(out, ids, embed_tokens_, vocab_start_, s);
  if (tp_) distributed::reduce_from_tp_forward(out, *tp_, s);
}

void LlamaDecoder::forward_layers(Tensor hidden, Tensor positions, const TokenBatch& batch, KvCache& cache,
                                  Tracer* tracer, Stream s) const {
  PLM_CHECK_EQ(hidden.size(0), batch.num_tokens());
  for (const SequenceChunk& c : batch.chunks) {
    PLM_CHECK(c.slot >= 0 && c.slot < cache.num_slots()) << "cache slot " << c.slot;
    PLM_CHECK_LE(c.start + c.length, cache.max_len()) << "sequence in slot " << c.slot << " exceeds the cache";
  }
  // Keys visible to each chunk after this step: the same for every layer, so copied to the device once.
  std::vector<int32_t> lens;
  for (const SequenceChunk& c : batch.chunks) lens.push_back(static_cast<int32_t>(c.start + c.length));
  const OwnedTensor kv_lens = to_device(host_i32(lens), hidden.device());
  for (size_t i = 0; i < layers_.size(); ++i) {
    layer_forward(static_cast<int>(i), hidden, positions, kv_lens, batch, cache, s);
    trace(tracer, hidden, "text.layers", first_layer_ + static_cast<int>(i));
  }
}

void LlamaDecoder::layer_forward(int index, Tensor x, Tensor positions, Tensor kv_lens, const TokenBatch& batch,
                                 KvCache& cache,
                                 Stream s) const {
  const DecoderLayer& layer = layers_[index];
  const int64_t t = x.size(0), hidden = config_.hidden_size, head_dim = config_.head_dim;
  const int64_t heads = local_heads_, kv_heads = local_kv_heads_, ffn = local_ffn_;
  const DType dtype = x.dtype();
  const Device device = x.device();

  OwnedTensor h({t, hidden}, dtype, device);
  OwnedTensor q({t, heads, head_dim}, dtype, device), attn({t, heads, head_dim}, dtype, device);
  OwnedTensor k({t, kv_heads, head_dim}, dtype, device), v({t, kv_heads, head_dim}, dtype, device);
  OwnedTensor y({t, hidden}, dtype, device);

  layer.input_norm.forward(h, x, s);
  layer.q_proj.forward(q, h, s);
  layer.k_proj.forward(k, h, s);
  layer.v_proj.forward(v, h, s);
  rope_forward(q, q, positions, inv_freq_, s);
  rope_forward(k, k, positions, inv_freq_, s);
  attend(attn, q, k, v, kv_lens, index, batch, cache, s);
  layer.o_proj.forward(y, attn, s);
  if (tp_) distributed::reduce_from_tp_forward(y, *tp_, s);
  add(x, x, y, s);

  OwnedTensor gate({t, ffn}, dtype, device), up({t, ffn}, dtype, device);
  layer.post_attention_norm.forward(h, x, s);
  layer.gate_proj.forward(gate, h, s);
  layer.up_proj.forward(up, h, s);
  swiglu_forward(gate, gate, up, s);
  layer.down_proj.forward(y, gate, s);
  if (tp_) distributed::reduce_from_tp_forward(y, *tp_, s);
  add(x, x, y, s);
}

// Appends k, v to the cache, then attends each chunk's queries to its slot's cached keys (causal).
void LlamaDecoder::attend(Tensor out, Tensor q, Tensor k, Tensor v, Tensor kv_lens, int layer, const TokenBatch& batch,
                          KvCache& cache, Stream s) const {
  const Tensor cache_k = cache.keys(layer), cache_v = cache.values(layer);
  int64_t row = 0;
  for (const SequenceChunk& c : batch.chunks) {
    copy_tensor(cache_k.select(0, c.slot).slice(0, c.start, c.start + c.length), k.slice(0, row, row + c.length), s);
    copy_tensor(cache_v.select(0, c.slot).slice(0, c.start, c.start + c.length), v.slice(0, row, row + c.length), s);
    row += c.length;
  }
  const int64_t heads = q.size(1), head_dim = q.size(2);
  if (is_dense_decode(batch)) {
    const int64_t b = static_cast<int64_t>(batch.chunks.size());
    attention_forward(out.reshape({b, 1, heads, head_dim}), Tensor(), q.reshape({b, 1, heads, head_dim}),
                      cache_k.slice(0, 0, b), cache_v.slice(0, 0, b), {.causal = true, .kv_lens = kv_lens}, s);
    return;
  }
  row = 0;
  for (size_t i = 0; i < batch.chunks.size(); ++i) {
    const SequenceChunk& c = batch.chunks[i];
    const Shape q_shape{1, c.length, heads, head_dim};
    attention_forward(out.slice(0, row, row + c.length).reshape(q_shape), Tensor(),
                      q.slice(0, row, row + c.length).reshape(q_shape), cache_k.slice(0, c.slot, c.slot + 1),
                      cache_v.slice(0, c.slot, c.slot + 1),
                      {.causal = true, .kv_lens = kv_lens.slice(0, static_cast<int64_t>(i), static_cast<int64_t>(i) + 1)},
                      s);
    row += c.length;
  }
}

void LlamaDecoder::head(Tensor logits, Tensor normed, Tensor hidden, Stream s) const {
  norm_.forward(normed, hidden, s);
  if (!logits.defined()) return;
  if (!tp_) {
    matmul(logits, normed, lm_head_, {.trans_b = true}, s);
    return;
  }
  OwnedTensor local({logits.size(0), lm_head_.size(0)}, logits.dtype(), logits.device());
  matmul(local, normed, lm_head_, {.trans_b = true}, s);
  distributed::gather_tp_blocks(logits, local, *tp_, s);
}

}  // namespace plm::model
