#include "trainer/model_flops.h"

namespace plm::trainer {

namespace {

// Backward FLOPs of a part whose forward costs `forward`.
double backward_flops(double forward, bool input_grad, bool weight_grad) {
  return forward * ((input_grad ? 1.0 : 0.0) + (weight_grad ? 1.0 : 0.0));
}

// QKᵀ and PV of one layer over `pairs` (query, key) pairs.
double attention_score_flops(double pairs, int heads, int head_dim) { return 2.0 * 2.0 * pairs * heads * head_dim; }

}  // namespace

double llm_forward_flops_per_token(const model::PlmConfig& config) {
  const model::TextConfig& t = config.text;
  const double h = t.hidden_size, q = static_cast<double>(t.num_heads) * t.head_dim,
               kv = static_cast<double>(t.num_kv_heads) * t.head_dim, f = t.intermediate_size;
  const double layer = h * (q + 2.0 * kv) + q * h + 3.0 * h * f;
  return 2.0 * (t.num_layers * layer + h * t.vocab_size);
}

double vision_forward_flops_per_tile(const model::PlmConfig& config) {
  const model::VisionConfig& v = config.vision;
  const double d = v.embed_dim, m = v.mlp_hidden, seq = v.seq_len();
  const double patch = 2.0 * v.num_patches() * (3.0 * v.patch_size * v.patch_size) * d;
  const double block = 2.0 * seq * (4.0 * d * d + 2.0 * d * m) + attention_score_flops(seq * seq, v.num_heads, v.head_dim());
  // Projector: linear_1 (D -> H) and linear_2 (H -> H) on every patch token before the pooling.
  const double h = config.text.hidden_size;
  const double projector = 2.0 * v.num_patches() * (d * h + h * h);
  return patch + v.depth * block + projector;
}

double tile_cost_in_tokens(const model::PlmConfig& config) {
  return vision_forward_flops_per_tile(config) / llm_forward_flops_per_token(config);
}

double training_step_flops(const model::PlmConfig& config, const TrainedParts& trained,
                           const std::vector<int64_t>& sequence_lengths, int64_t vision_tiles) {
  const model::TextConfig& t = config.text;
  double tokens = 0.0, causal_pairs = 0.0;
  for (const int64_t n : sequence_lengths) {
    tokens += static_cast<double>(n);
    causal_pairs += static_cast<double>(n) * static_cast<double>(n + 1) / 2.0;
  }
  const double llm = tokens * llm_forward_flops_per_token(config) +
                     t.num_layers * attention_score_flops(causal_pairs, t.num_heads, t.head_dim);
  const bool media_trains = trained.vision || trained.projector;
  double total = llm + backward_flops(llm, media_trains && vision_tiles > 0, trained.llm);
  if (vision_tiles > 0) {
    const double vision = static_cast<double>(vision_tiles) * vision_forward_flops_per_tile(config);
    total += vision + backward_flops(vision, trained.vision, media_trains);
  }
  return total;
}

}  // namespace plm::trainer
