// Step time of a layout from FLOPs, bandwidths and communication volume. Compute: each pipeline stage's
// forward + backward FLOPs of one micro-batch (forward: trainer/model_flops.h's per-token and per-tile counts,
// matmuls and attention scores; backward = 2 x forward, input and weight gradients; full recomputation adds
// one forward of the blocks, selective the MLP's gate and up GEMMs), divided over the stage's TP ranks (the
// tower only when it splits), at peak x efficiency. 1F1B runs
// m micro-batches through p stages in (m + p - 1) slots of the slowest stage: the p - 1 extra slots are the
// bubble. TP collectives and pipeline transfers sit on the critical path; the DP gradient reduction overlaps
// the last micro-batch's backward (trainer/gradient_reducer.h) and only what sticks out of it counts.
// A deliberately simple model (no kernel-level overlap, no latency term): it ranks layouts, it does not
// promise seconds.
#pragma once

#include "model/config.h"
#include "plan/hardware.h"
#include "plan/memory_model.h"

namespace plm::plan {

struct StepTime {
  double compute_s = 0.0;      // m slots of the slowest stage
  double bubble_s = 0.0;       // p - 1 more
  double tp_s = 0.0;           // the slowest stage's TP collectives
  double pp_s = 0.0;           // stage-boundary transfers
  double dp_exposed_s = 0.0;   // the part of the DP reduction the last backward does not hide
  double dp_s = 0.0;           // the whole DP reduction
  double model_flops = 0.0;    // the step's FLOPs without recomputation (3 x forward), all devices: MFU numerator
  double total_s() const { return compute_s + bubble_s + tp_s + pp_s + dp_exposed_s; }
};

// `devices_per_node` decides which link each axis crosses (plan/layout.h axis_links).
StepTime training_step_time(const model::PlmConfig& config, const TrainingSetup& setup, const Hardware& hardware,
                            int devices_per_node);

// One decode step of setup.max_num_seqs sequences at full length on one replica: each stage reads its weights
// and KV cache once (memory-bound) or computes (compute-bound), whichever is slower, stages one after the
// other, plus the TP collectives.
double decode_step_seconds(const model::PlmConfig& config, const ServingSetup& setup, const Hardware& hardware,
                           int devices_per_node);

// The bandwidth of a link on this hardware (0 for Link::kNone).
double link_bytes_per_s(const Hardware& hardware, Link link);

}  // namespace plm::plan
