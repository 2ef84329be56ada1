// run_training: what `plm train` runs on each rank. Loads the model directory (this rank's TP shard, in the
// working dtype; tokenizer, processor), opens the data, resumes from the latest complete checkpoint of output_dir
// (required when config.resume), then for each optimizer step: loads this rank's cost-balanced micro-batches (the next
// step's are built in the background), runs the data-parallel step (trainer/data_parallel_step.h), logs the
// step's metrics on rank 0 (metrics.jsonl, tb/, progress line), checkpoints every checkpoint.every steps, and
// stops after the step in which any rank saw a stop request (SIGTERM / SIGUSR1), saving a checkpoint first.
// At the end it writes metrics.png and exports output_dir/final-hf (gathered whole under tensor parallelism).
// Errors on any rank are returned on every rank (agreed over the world communicator) so no rank is left waiting.
#pragma once

#include <cstdint>
#include <functional>
#include <ostream>

#include "absl/status/statusor.h"
#include "distributed/communicator.h"
#include "trainer/train_config.h"

namespace plm::trainer {

struct TrainRunHooks {
  std::ostream* log = nullptr;        // rank 0's progress and notices; null: silent
  std::function<int()> stop_requested;  // non-zero: stop after the current step (StopSignal::requested)
};

struct TrainRunResult {
  int64_t first_step = 1;       // 1, or the resumed checkpoint's step + 1
  int64_t last_step = 0;        // the last step trained (== config.steps unless stopped)
  bool stopped = false;         // a stop request ended the run early (a checkpoint was saved)
  double final_loss = 0.0;      // the last step's loss
};

// Collective over `world` (tp * pp * dp ranks, TP adjacent, then stages: distributed/parallel_dims.h).
absl::StatusOr<TrainRunResult> run_training(const TrainConfig& config, distributed::Communicator& world,
                                            const TrainRunHooks& hooks = {});

}  // namespace plm::trainer
