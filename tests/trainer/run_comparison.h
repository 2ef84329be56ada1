// Training one run at different layouts on in-process ranks, and comparing two `plm train` output directories of
// it: the per-step losses and grad norms of metrics.jsonl, and the final-hf weights (the runs export them in f32:
// export_dtype=f32).
#pragma once

#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "trainer/train_config.h"

namespace plm::testing {

// Trains `config` on `ranks` in-process ranks (distributed::run_local_ranks); stop_after_step > 0: a stop request
// (SIGTERM) after that step. The first error of any rank.
absl::Status train_on_local_ranks(const trainer::TrainConfig& config, int ranks, int stop_after_step = 0);

struct RunDifference {
  std::string error;          // non-empty: not comparable (a missing file, other steps, other tensor names)
  int steps = 0;
  double loss = 0.0;          // worst |got - want| / |want| over the steps
  double grad_norm = 0.0;     // the same for the grad norm
  double weight = 0.0;        // max |got - want| / max |want| over every weight of the model
  double tensor_weight = 0.0; // the same per tensor, the worst tensor's
  std::string worst_tensor;   // where `tensor_weight` is
};

RunDifference compare_runs(const std::filesystem::path& want, const std::filesystem::path& got);

// "4 steps: loss 1.2e-07, grad_norm 3e-06, weights 2e-06, per tensor 9e-06 (name)" or the error.
std::string describe(const RunDifference& d);

}  // namespace plm::testing
