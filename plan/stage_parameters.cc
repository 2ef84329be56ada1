#include "plan/stage_parameters.h"

#include <algorithm>

#include "model/parallel.h"

namespace plm::plan {

DecoderWidths decoder_widths(const model::TextConfig& text, int tp) {
  const int kv_parts = std::min(tp, text.num_kv_heads);  // model/text/llama_decoder.cc
  return {.hidden = text.hidden_size, .heads = text.num_heads / tp, .kv_heads = text.num_kv_heads / kv_parts,
          .head_dim = text.head_dim, .ffn = text.intermediate_size / tp};
}

VisionWidths vision_widths(const model::VisionConfig& vision, int tp) {
  const int t = model::vision_splits(vision, tp) ? tp : 1;
  return {.tp = t, .heads = vision.num_heads / t, .mlp = vision.mlp_hidden / t};
}

std::vector<int> training_stage_layers(const model::PlmConfig& config, int pp) {
  if (pp == 1) return {};
  return model::cost_aware_stage_layers(config, pp, {.media_fraction = 0.0, .head_fraction = 1.0});
}

StageParameters stage_parameters(const model::PlmConfig& config, int tp, int pp, int stage,
                                 const std::vector<int>& stage_layer_counts) {
  const model::TextConfig& text = config.text;
  const model::ParameterCounts whole = model::count_parameters(config);
  StageParameters p;
  p.stage = stage;
  const auto [first, last] = stage_layer_counts.empty() ? model::stage_layers(text.num_layers, stage, pp)
                                                        : model::stage_layers(stage_layer_counts, stage);
  p.first_layer = first;
  p.num_layers = last - first;
  p.first_stage = stage == 0;
  p.last_stage = stage == pp - 1;

  const DecoderWidths w = decoder_widths(text, tp);
  const int64_t h = w.hidden, q = w.heads * w.head_dim, kv = w.kv_heads * w.head_dim;
  const int64_t layer = 2 * h + h * q + 2 * h * kv + q * h + 3 * h * w.ffn;  // norms, q k v, o, gate up down
  p.layers = p.num_layers * layer;
  const int64_t vocab_shard = int64_t{text.vocab_size} / tp * h;
  if (p.first_stage) {
    const model::VisionConfig& v = config.vision;
    const int64_t d = v.embed_dim, m = v.mlp_hidden;
    // Per block, the split part: qkv (with bias) and fc1 (with bias) column-parallel, proj and fc2 weights
    // row-parallel (their biases stay whole on rank 0).
    const int64_t split_per_block = 3 * d * d + 3 * d + d * d + m * d + m + d * m;
    const int tower_tp = vision_widths(v, tp).tp;
    p.vision = whole.vision - v.depth * (split_per_block - split_per_block / tower_tp);
    p.projector = whole.projector;
    p.embedding = vocab_shard;
  }
  if (p.last_stage) {
    const bool tied_here = config.tie_word_embeddings && p.first_stage;
    p.head = h + (tied_here ? 0 : vocab_shard);
  }
  return p;
}

}  // namespace plm::plan
