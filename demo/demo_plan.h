// How much `plm demo` does for a wall-time budget (--minutes): how many pictures and clips it generates, how many
// optimizer steps it trains, and when it stops training if this machine is slower than planned (it then saves,
// exports what it has and still evaluates, so the budget holds). Sized from the demo's speed on an idle 2-core
// machine (kIdleStepsPerSecond, measured: demo/README.md). Pure arithmetic; thread-safe.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "data/synthetic_dataset.h"

namespace plm::demo {

inline constexpr double kMinMinutes = 1.0;
inline constexpr int64_t kBatchSamples = 16;  // configs/train/demo.yaml's batch.global

struct DemoPlan {
  data::SynthConfig data;        // images, videos, splits, seed
  int64_t steps = 0;             // optimizer steps of kBatchSamples samples
  double training_budget_s = 0;  // wall time after which training is stopped
};

absl::StatusOr<DemoPlan> plan_demo(double minutes, uint64_t seed);

}  // namespace plm::demo
