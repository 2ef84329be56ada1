#include "model/parallel.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace plm::model {

std::pair<int, int> stage_layers(int num_layers, int stage, int num_stages) {
  const int base = num_layers / num_stages, extra = num_layers % num_stages;
  const int first = stage * base + std::min(stage, extra);
  return {first, first + base + (stage < extra ? 1 : 0)};
}

std::pair<int, int> stage_layers(const std::vector<int>& counts, int stage) {
  int first = 0;
  for (int s = 0; s < stage; ++s) first += counts[s];
  return {first, first + counts[stage]};
}

std::vector<int> cost_aware_stage_layers(const PlmConfig& config, int num_stages, double media_fraction) {
  const VisionConfig& v = config.vision;
  const TextConfig& t = config.text;
  // Multiply-adds x 2 per token: projections and MLP; attention over the tile's own tokens for the tower.
  const double d = v.embed_dim, seq = v.seq_len();
  const double tower_per_tile = v.depth * seq * 2.0 * (4.0 * d * d + 2.0 * d * v.mlp_hidden + 2.0 * seq * d);
  const double q = static_cast<double>(t.num_heads) * t.head_dim;
  const double kv = static_cast<double>(t.num_kv_heads) * t.head_dim, h = t.hidden_size;
  const double layer_per_token = 2.0 * (2.0 * h * q + 2.0 * h * kv + 3.0 * h * t.intermediate_size);
  const double vision_layers = media_fraction * tower_per_tile / config.tokens_per_tile() / layer_per_token;
  const double per_stage = (t.num_layers + vision_layers) / num_stages;
  const int first = std::clamp(static_cast<int>(std::lround(per_stage - vision_layers)), 0, t.num_layers);
  std::vector<int> counts = {first};
  const int rest = t.num_layers - first, others = num_stages - 1;
  for (int s = 0; s < others; ++s) counts.push_back(rest / others + (s < rest % others ? 1 : 0));
  if (others == 0) counts[0] = t.num_layers;
  return counts;
}

bool vision_splits(const VisionConfig& vision, int tp) {
  return vision.num_heads % tp == 0 && vision.mlp_hidden % tp == 0;
}

absl::Status validate_parallel_layout(const PlmConfig& config, int tp, int pp) {
  const TextConfig& t = config.text;
  const auto fail = [](auto... parts) { return absl::InvalidArgumentError(absl::StrCat(parts...)); };
  if (tp < 1 || pp < 1) return fail("tp (", tp, ") and pp (", pp, ") must be at least 1");
  if (t.num_heads % tp != 0) return fail("num_attention_heads (", t.num_heads, ") is not divisible by tp (", tp, ")");
  if (t.num_kv_heads % tp != 0 && tp % t.num_kv_heads != 0) {
    return fail("num_key_value_heads (", t.num_kv_heads, ") and tp (", tp, ") must divide one another");
  }
  if (t.intermediate_size % tp != 0) {
    return fail("intermediate_size (", t.intermediate_size, ") is not divisible by tp (", tp, ")");
  }
  if (t.vocab_size % tp != 0) return fail("vocab_size (", t.vocab_size, ") is not divisible by tp (", tp, ")");
  if (pp > t.num_layers) return fail("pp (", pp, ") exceeds the ", t.num_layers, " decoder layers");
  return absl::OkStatus();
}

}  // namespace plm::model
