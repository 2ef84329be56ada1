// The 1F1B pipeline schedule (PipeDream-Flush; Megatron's non-interleaved schedule) of one optimizer step: the
// list of actions each stage takes, and the executor that runs them on this rank's stage (model/stage_pass.h).
// The executor owns the transfers between stages and the activations of the micro-batches in flight (at most
// num_stages - stage of them on a stage). A stage sends its output right after a forward and its input gradient
// right after a backward; when the next action receives from the same neighbour, the two transfers go as one
// exchange (Communicator::send_recv: send_forward_recv_backward, send_backward_recv_forward), so neighbours never
// wait on each other's sends. Transfers depend only on the stage and the micro-batch index, never on the data:
// a micro-batch without media runs no vision tower (stage 0 alone knows) and the schedule cannot deadlock on it.
// Collective over the pipeline group; not thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "distributed/communicator.h"
#include "model/plm_model.h"
#include "model/recompute.h"
#include "model/training_batch.h"

namespace plm::trainer {

enum class PipeOp { kForward, kBackward };

struct PipeAction {
  PipeOp op;
  int micro;  // micro-batch index
  bool operator==(const PipeAction&) const = default;
};

// Stage `stage` of `num_stages` over `num_micro` micro-batches, in three phases: warmup (num_stages - stage - 1
// forwards, at most num_micro), steady state (one forward, one backward), cooldown (the remaining backwards).
std::vector<PipeAction> one_f_one_b(int stage, int num_stages, int num_micro);

// Tags of the transfers between stages (matched per neighbour in order).
inline constexpr int kActivationTag = 101;
inline constexpr int kGradientTag = 102;

struct PipelineStats {
  double loss_sum = 0.0;        // the last stage's token losses (0 elsewhere)
  int64_t vision_tiles = 0;     // tiles + frames through the vision tower on this rank
  int vision_passes = 0;        // micro-batches that ran the vision tower on this rank
  size_t peak_arena_bytes = 0;  // the largest activation memory of one micro-batch
  size_t peak_in_flight_bytes = 0;  // the largest sum over the micro-batches in flight at once
  int peak_in_flight = 0;       // the most micro-batches holding activations at once
  // Compute time of this stage's forward + backward per micro-batch, split by whether it carries media (the
  // modality skew of stage 0); and the time spent in transfers (waiting for a neighbour included).
  double media_compute_s = 0.0, text_compute_s = 0.0;
  int media_micro = 0, text_micro = 0;
  double transfer_s = 0.0;
};

struct PipelineOptions {
  model::Recompute recompute = model::Recompute::kNone;
  // Called as the step's last backward finishes gradients (model/training_pass.h TrainPassOptions).
  std::function<void(const std::string& prefix)> gradients_final = nullptr;
};

// Runs `micro_batches` (the same on every stage of the pipeline) through this rank's stage: forward and backward
// into `grad` (+=), loss_scale as model::train_forward_backward's. Every stage checks every micro-batch before the
// first transfer and all return the first failing stage's error (nothing has run then). pp: the pipeline group
// (a size-1 group for pp = 1, where this is train_forward_backward over the micro-batches in order).
absl::StatusOr<PipelineStats> run_one_f_one_b(const model::PlmModel& model, const model::PlmWeights& grad,
                                              const std::vector<model::TrainingBatch>& micro_batches,
                                              float loss_scale, distributed::Communicator& pp,
                                              const PipelineOptions& options, Stream s = {});

}  // namespace plm::trainer
