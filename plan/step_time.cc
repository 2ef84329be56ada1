#include "plan/step_time.h"

#include <algorithm>

#include "core/check.h"
#include "plan/communication_model.h"
#include "trainer/model_flops.h"

namespace plm::plan {

namespace {

// Forward FLOPs of one decoder layer per token, without the attention scores (trainer/model_flops.h counts
// 2 x (L x layer + H x V) per token).
double layer_flops_per_token(const model::PlmConfig& config) {
  const model::TextConfig& t = config.text;
  const double head = 2.0 * t.hidden_size * static_cast<double>(t.vocab_size);
  return (trainer::llm_forward_flops_per_token(config) - head) / t.num_layers;
}

// Forward + backward (+ recomputation) FLOPs of one micro-batch through `stage`, over all its TP ranks.
struct StageFlops {
  double text = 0.0;    // decoder layers and LM head: split over the TP ranks
  double vision = 0.0;  // tower + projector: split only when the tower splits
  double per_rank(const model::PlmConfig& config, int tp) const {
    return text / tp + vision / vision_widths(config.vision, tp).tp;
  }
};

StageFlops stage_flops(const model::PlmConfig& config, const TrainingSetup& setup, const StageParameters& stage,
                       model::Recompute recompute) {
  const model::TextConfig& t = config.text;
  const double tokens = static_cast<double>(setup.micro_batch.tokens);
  const double pairs = tokens * (static_cast<double>(setup.sequence_tokens) + 1.0) / 2.0;  // causal (q, k) pairs
  const double layers = stage.num_layers;
  const double decoder = layers * (tokens * layer_flops_per_token(config) + 4.0 * pairs * t.num_heads * t.head_dim);
  const double tiles = stage.first_stage ? static_cast<double>(setup.micro_batch.tiles) : 0.0;
  const double vision = tiles * trainer::vision_forward_flops_per_tile(config);
  const model::VisionConfig& v = config.vision;
  StageFlops f{.text = 3.0 * decoder, .vision = 3.0 * vision};
  switch (recompute) {
    case model::Recompute::kNone: break;
    case model::Recompute::kSelective:  // the MLP's gate and up GEMMs; the tower's fc1
      f.text += layers * tokens * 4.0 * t.hidden_size * t.intermediate_size;
      f.vision += tiles * v.depth * v.seq_len() * 2.0 * v.embed_dim * v.mlp_hidden;
      break;
    case model::Recompute::kFull:  // the blocks' forward again
      f.text += decoder;
      f.vision += vision;
      break;
  }
  if (stage.last_stage) f.text += 3.0 * 2.0 * tokens * t.hidden_size * static_cast<double>(t.vocab_size);
  return f;
}

double seconds(double bytes, double bytes_per_s) { return bytes > 0.0 ? bytes / bytes_per_s : 0.0; }

}  // namespace

double link_bytes_per_s(const Hardware& hardware, Link link) {
  switch (link) {
    case Link::kNone: return 0.0;
    case Link::kIntraNode: return hardware.intra_node_bytes_per_s;
    case Link::kInterNode: return hardware.inter_node_bytes_per_s;
  }
  PLM_CHECK(false) << "unhandled Link " << static_cast<int>(link);
  return 0.0;
}

StepTime training_step_time(const model::PlmConfig& config, const TrainingSetup& setup, const Hardware& hardware,
                            int devices_per_node) {
  const Layout& l = setup.layout;
  const AxisLinks links = axis_links(l, devices_per_node);
  const double rate = hardware.peak_flops * hardware.efficiency;
  double slot_s = 0.0, tp_wire = 0.0, pp_wire = 0.0, dp_wire = 0.0;
  StepTime time;
  for (int s = 0; s < l.pp; ++s) {
    const StageParameters stage = stage_parameters(config, l.tp, l.pp, s, training_stage_layers(config, l.pp));
    slot_s = std::max(slot_s, stage_flops(config, setup, stage, setup.recompute).per_rank(config, l.tp) / rate);
    const StageFlops model = stage_flops(config, setup, stage, model::Recompute::kNone);
    time.model_flops += static_cast<double>(l.dp) * setup.num_micro_batches * (model.text + model.vision);
    const Traffic traffic = training_traffic(config, setup, s);
    tp_wire = std::max(tp_wire, traffic.tp.wire_bytes);
    pp_wire = std::max(pp_wire, traffic.pp.wire_bytes);
    dp_wire = std::max(dp_wire, traffic.dp.wire_bytes);
  }
  time.compute_s = setup.num_micro_batches * slot_s;
  time.bubble_s = (l.pp - 1) * slot_s;
  time.tp_s = seconds(tp_wire, link_bytes_per_s(hardware, links.tp));
  time.pp_s = seconds(pp_wire, link_bytes_per_s(hardware, links.pp));
  time.dp_s = seconds(dp_wire, link_bytes_per_s(hardware, links.dp));
  time.dp_exposed_s = std::max(0.0, time.dp_s - slot_s * 2.0 / 3.0);  // the last backward hides the rest
  return time;
}

double decode_step_seconds(const model::PlmConfig& config, const ServingSetup& setup, const Hardware& hardware,
                           int devices_per_node) {
  const Layout& l = setup.layout;
  const AxisLinks links = axis_links(l, devices_per_node);
  const model::TextConfig& t = config.text;
  const double rate = hardware.peak_flops * hardware.efficiency, seqs = static_cast<double>(setup.max_num_seqs);
  const double e = static_cast<double>(dtype_size(setup.dtype));
  double total = 0.0;
  for (int s = 0; s < l.pp; ++s) {
    const ServingMemory m = serving_memory(config, setup, s);
    const double bytes = static_cast<double>(m.weights + m.kv_cache);
    const double flops = (seqs * (m.stage.num_layers * layer_flops_per_token(config) +
                                  (m.stage.last_stage ? 2.0 * t.hidden_size * static_cast<double>(t.vocab_size) : 0.0)) +
                          4.0 * seqs * setup.max_len * t.num_heads * t.head_dim * m.stage.num_layers) / l.tp;
    total += std::max(bytes / hardware.memory_bytes_per_s, flops / rate);
    const Traffic traffic = forward_traffic(config, l.tp, l.pp, s, setup.max_num_seqs, setup.max_num_seqs, 0,
                                            setup.dtype);
    total += seconds(traffic.tp.wire_bytes, link_bytes_per_s(hardware, links.tp));
    if (!m.stage.last_stage) total += seconds(seqs * t.hidden_size * e, link_bytes_per_s(hardware, links.pp));
  }
  return total;
}

}  // namespace plm::plan
