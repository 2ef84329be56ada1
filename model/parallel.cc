#include "model/parallel.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/check.h"

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

std::vector<int> cost_aware_stage_layers(const PlmConfig& config, int num_stages, const StageWork& work) {
  PLM_CHECK_GT(num_stages, 0);
  const VisionConfig& v = config.vision;
  const TextConfig& t = config.text;
  // Multiply-adds x 2 per token: projections and MLP; attention over the tile's own tokens for the tower; the
  // projector's linear_1 (D -> H) and linear_2 (H -> H) on every patch token before the pooling.
  const double d = v.embed_dim, seq = v.seq_len(), h = t.hidden_size;
  const double tower_per_tile = v.depth * seq * 2.0 * (4.0 * d * d + 2.0 * d * v.mlp_hidden + 2.0 * seq * d) +
                                2.0 * v.num_patches() * (d * h + h * h);
  const double q = static_cast<double>(t.num_heads) * t.head_dim;
  const double kv = static_cast<double>(t.num_kv_heads) * t.head_dim;
  const double layer_per_token = 2.0 * (2.0 * h * q + 2.0 * h * kv + 3.0 * h * t.intermediate_size);
  const double head_per_token = 2.0 * h * t.vocab_size;
  std::vector<double> load(num_stages, 0.0);  // decoder-layer equivalents per token
  load.front() += work.media_fraction * tower_per_tile / config.tokens_per_tile() / layer_per_token;
  load.back() += work.head_fraction * head_per_token / layer_per_token;
  std::vector<int> counts(num_stages, 0);
  for (int layer = 0; layer < t.num_layers; ++layer) {
    const int s = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    ++counts[s];
    load[s] += 1.0;
  }
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
