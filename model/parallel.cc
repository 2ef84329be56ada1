#include "model/parallel.h"

#include "absl/strings/str_cat.h"

namespace plm::model {

std::pair<int, int> stage_layers(int num_layers, int stage, int num_stages) {
  const int base = num_layers / num_stages, extra = num_layers % num_stages;
  const int first = stage * base + std::min(stage, extra);
  return {first, first + base + (stage < extra ? 1 : 0)};
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
