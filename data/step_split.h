// Splits the samples of one optimizer step over data-parallel ranks and their micro-batches so that the
// work, not the sample count, is balanced (issue 18: modality skew). The step's set of samples never
// changes, only who runs which, so a loss summed over every labelled token of the step and divided by the
// step's labelled-token count is the same for any split.
// Greedy longest-processing-time: samples in decreasing cost (ties: earlier position first) each go to the
// least-loaded rank (ties: lowest rank); then within a rank the same over its micro-batches. Each
// micro-batch lists its samples in step order. A rank or micro-batch may get no samples when the step has
// few, very unequal samples; the trainer still joins the collectives for it.
#pragma once

#include <cstdint>
#include <vector>

#include "data/sft_dataset.h"

namespace plm::data {

// cost = tokens + vision tiles (image tiles + video frames) x tile_cost, tile_cost being what one tile
// costs in units of one token of the language model (measured or estimated by the trainer).
double sample_cost(const SampleExtent& extent, double tile_cost);

struct StepSplit {
  // micro_batches[rank][m] = the positions (0 .. G-1) within the step of the samples rank `rank` runs in
  // its micro-batch m.
  std::vector<std::vector<std::vector<int>>> micro_batches;
  std::vector<double> rank_cost;  // (dp_size) total cost per rank
};

// costs: one per sample of the step, in step order. dp_size, num_micro_batches >= 1.
StepSplit split_step(const std::vector<double>& costs, int dp_size, int num_micro_batches);

}  // namespace plm::data
