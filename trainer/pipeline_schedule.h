// The 1F1B pipeline schedule (PipeDream-Flush; Megatron's non-interleaved schedule) of one optimizer step: the
// list of actions each stage takes, the program of actions and transfers it posts, and the executor that runs the
// program on this rank's stage (model/stage_pass.h). The executor owns the transfers between stages — non-blocking
// (Communicator::isend / irecv): a receive is posted ahead and waited for just before the action that reads it, a
// send is waited for only before its buffer is reused — and their buffers, and the activations of the micro-batches
// in flight (at most num_stages - stage of them on a stage). Transfers depend only on the stage and the
// micro-batch index, never on the data: a micro-batch without media runs no vision tower (stage 0 alone knows) and
// the schedule cannot deadlock on it. Collective over the pipeline group; not thread-safe.
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

// The compute actions, then the transfers: posting a receive of the previous stage's output (the input of a
// forward) or of the next stage's input gradient (the output gradient of a backward), and sending this stage's
// output (after a forward) or input gradient (after a backward).
enum class PipeOp { kForward, kBackward, kRecvActivation, kRecvGradient, kSendActivation, kSendGradient };

struct PipeAction {
  PipeOp op;
  int micro;  // micro-batch index
  bool operator==(const PipeAction&) const = default;
};

// Stage `stage` of `num_stages` over `num_micro` micro-batches, in three phases: warmup (num_stages - stage - 1
// forwards, at most num_micro), steady state (one forward, one backward), cooldown (the remaining backwards).
std::vector<PipeAction> one_f_one_b(int stage, int num_stages, int num_micro);

// one_f_one_b's actions with the transfers the stage posts around them, in posting order: the receive of the next
// forward's input as the current forward starts (so it arrives during the compute), each send as soon as its
// tensor is computed, and the receive of a backward's output gradient right after the previous action's send.
// Both ends of every stage boundary then post its messages in one order (the upper stage's action order), which
// NCCL needs (Communicator::isend); tests/trainer/pipeline_schedule_test.cc checks it for up to 4 stages by
// simulating transfers that each finish only once both ends have posted everything before it.
std::vector<PipeAction> one_f_one_b_program(int stage, int num_stages, int num_micro);

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
  // modality skew of stage 0); and the time spent posting and waiting for transfers (waiting for a neighbour).
  double media_compute_s = 0.0, text_compute_s = 0.0;
  int media_micro = 0, text_micro = 0;
  double transfer_s = 0.0;
  // The process's CPU time (all threads) in those forwards and backwards: the stage's work, which on a machine shared
  // with other jobs is steadier than its wall time.
  double compute_cpu_s = 0.0;
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
