// FLOP counts of a training step, for the MFU estimate in metrics.jsonl and for balancing data-parallel work
// by cost (data/step_split.h). Counted like Megatron/PaLM: the matmuls (2 FLOPs per multiply-add) of every
// linear layer, the LM head and the attention scores (QKᵀ and PV over the causal or full pairs); norms,
// activations and the optimizer are left out. A part's backward costs its forward once for the input
// gradient (when anything upstream trains) and once more for the weight gradients (when the part trains).
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"

namespace plm::trainer {

// Which parts of the model train (LoRA counts as the LLM training: its backward runs through every layer).
struct TrainedParts {
  bool vision = true;
  bool projector = true;
  bool llm = true;
};

// Forward FLOPs of one token through the language model's linear layers and head (no attention scores).
double llm_forward_flops_per_token(const model::PlmConfig& config);
// Forward FLOPs of one image tile or video frame through the vision tower and projector.
double vision_forward_flops_per_tile(const model::PlmConfig& config);
// What one tile costs in units of one language-model token (data/step_split.h's tile_cost).
double tile_cost_in_tokens(const model::PlmConfig& config);

// Forward + backward FLOPs of a step: `sequence_lengths` the token count of every sample, `vision_tiles` the
// tiles + frames through the tower.
double training_step_flops(const model::PlmConfig& config, const TrainedParts& trained,
                           const std::vector<int64_t>& sequence_lengths, int64_t vision_tiles);

}  // namespace plm::trainer
