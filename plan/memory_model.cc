#include "plan/memory_model.h"

#include <algorithm>

#include "trainer/adamw_zero.h"

namespace plm::plan {

namespace {

constexpr int64_t kAdamWBytesPerParameter = 3 * 4;  // f32 master, exp_avg, exp_avg_sq

// The stage index whose rank needs the most of `memory(stage)`, first on ties.
template <typename Memory, typename F>
Memory largest_over_stages(int pp, F&& memory) {
  Memory peak = memory(0);
  for (int s = 1; s < pp; ++s) {
    const Memory m = memory(s);
    if (m.total() > peak.total()) peak = m;
  }
  return peak;
}

}  // namespace

TrainingMemory training_memory(const model::PlmConfig& config, const TrainingSetup& setup, int stage) {
  const Layout& l = setup.layout;
  const int64_t e = static_cast<int64_t>(dtype_size(setup.dtype));
  TrainingMemory m;
  m.stage = stage_parameters(config, l.tp, l.pp, stage, training_stage_layers(config, l.pp));
  const int64_t n = m.stage.total();
  m.weights = n * e;
  m.gradients = n * e;
  // Rank 0's shard: the first numel % dp ranks get one more element.
  m.optimizer_shard = setup.zero_stage == 0 ? n : trainer::shard_range(n, 0, l.dp).size();
  m.optimizer = m.optimizer_shard * kAdamWBytesPerParameter;
  m.in_flight = std::min(l.pp - stage, setup.num_micro_batches);
  m.activation_parts = training_activations(config, m.stage, l.tp, setup.micro_batch, setup.recompute, setup.dtype);
  m.activations = m.activation_parts.total(m.in_flight);
  if (l.dp > 1 && setup.zero_stage >= 1) m.buffers += m.optimizer_shard * e;  // the all-gather's input copy
  if (l.dp > 1 && setup.zero_stage == 2) m.buffers += std::min(setup.bucket_elements, m.optimizer_shard) * e;
  m.runtime = setup.runtime_bytes;
  return m;
}

TrainingMemory peak_training_memory(const model::PlmConfig& config, const TrainingSetup& setup) {
  return largest_over_stages<TrainingMemory>(setup.layout.pp,
                                             [&](int s) { return training_memory(config, setup, s); });
}

ServingMemory serving_memory(const model::PlmConfig& config, const ServingSetup& setup, int stage) {
  const Layout& l = setup.layout;
  const int64_t e = static_cast<int64_t>(dtype_size(setup.dtype));
  ServingMemory m;
  m.stage = stage_parameters(config, l.tp, l.pp, stage);
  m.weights = m.stage.total() * e;
  const DecoderWidths w = decoder_widths(config.text, l.tp);
  m.kv_bytes_per_token = 2 * m.stage.num_layers * w.kv_heads * w.head_dim * e;
  m.kv_cache = setup.max_num_seqs * setup.max_len * m.kv_bytes_per_token;
  const int64_t tokens = std::max(setup.max_num_seqs, std::min(setup.step_tokens, setup.max_len));
  m.activations = inference_activation_bytes(config, m.stage, l.tp, tokens, setup.max_num_seqs, setup.tiles,
                                             setup.dtype);
  m.runtime = setup.runtime_bytes;
  return m;
}

ServingMemory peak_serving_memory(const model::PlmConfig& config, const ServingSetup& setup) {
  return largest_over_stages<ServingMemory>(setup.layout.pp, [&](int s) { return serving_memory(config, setup, s); });
}

}  // namespace plm::plan
