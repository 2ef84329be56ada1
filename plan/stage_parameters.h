// What one rank holds of the model under tp x pp, counted from the config alone as model/ loads it
// (model/parallel.h): q, gate, up and the vocabulary split over TP, K/V heads split or, when TP exceeds them,
// one per rank; o and down row-parallel; norms replicated. Stage 0 also holds the vision tower (heads and MLP
// split over TP when they divide, model::vision_splits, else replicated), the projector (replicated) and the
// embedding; the last stage the final norm and the LM head (a copy of the tied embedding unless that is on the
// same stage). Counts are TP rank 0's: it also holds the row-parallel biases of the vision tower.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"

namespace plm::plan {

// Per-TP-rank widths of one decoder layer.
struct DecoderWidths {
  int64_t hidden = 0;    // H (not split)
  int64_t heads = 0;     // query heads / tp
  int64_t kv_heads = 0;  // K/V heads on a rank
  int64_t head_dim = 0;
  int64_t ffn = 0;       // intermediate_size / tp
};
DecoderWidths decoder_widths(const model::TextConfig& text, int tp);

// Per-TP-rank widths of the vision tower: heads and MLP split over tp when they divide, else whole.
struct VisionWidths {
  int tp = 1;         // the tower's own TP degree: tp, or 1 when it is replicated
  int64_t heads = 0;  // heads per rank
  int64_t mlp = 0;    // MLP hidden per rank
};
VisionWidths vision_widths(const model::VisionConfig& vision, int tp);

struct StageParameters {
  int stage = 0;
  int first_layer = 0;
  int num_layers = 0;
  bool first_stage = true;
  bool last_stage = true;
  int64_t vision = 0;     // tower (first stage)
  int64_t projector = 0;  // first stage
  int64_t embedding = 0;  // vocab shard (first stage)
  int64_t layers = 0;     // this stage's decoder layers
  int64_t head = 0;       // final norm + LM head vocab shard (last stage; no head matrix when tied on this stage)

  int64_t total() const { return vision + projector + embedding + layers + head; }
};

// Stage `stage` of `pp` as TP rank 0 of `tp` holds it, the decoder layers split by `stage_layer_counts` (one
// count per stage; empty: the even split, model::stage_layers, as plm generate uses by default).
StageParameters stage_parameters(const model::PlmConfig& config, int tp, int pp, int stage,
                                 const std::vector<int>& stage_layer_counts = {});

// The split plm train uses without layout.pp_layers or layout.pp_media_fraction (trainer/train_run.cc): the
// cost-aware one with the LM head over every token on the last stage; empty for pp = 1.
std::vector<int> training_stage_layers(const model::PlmConfig& config, int pp);

}  // namespace plm::plan
