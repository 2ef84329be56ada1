#include "demo/demo_plan.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace plm::demo {
namespace {

// Measured with 2 ranks (OMP_NUM_THREADS=1) of configs/train/demo.yaml on 2 idle cores: see demo/README.md.
constexpr double kIdleStepsPerSecond = 3.8;
// What is not training: generating the data, writing the model, starting the ranks and the server, asking
// about the held-out examples, captioning the held-out clips, and a margin.
constexpr double kOtherWorkS = 45.0;
constexpr double kOtherWorkFraction = 0.15;
constexpr int64_t kMinSteps = 100;  // configs/train/demo.yaml's warm-up is 100 steps
constexpr int64_t kMaxSteps = 4000;
// Distinct pictures and clips: enough that the model sees each one a few times at most.
constexpr int64_t kMaxItemsPerKind = 2500;
constexpr int64_t kMinItemsPerKind = 200;
constexpr int64_t kHeldOutPerKind = 100;  // test items of each kind (the demo asks about all of them)

}  // namespace

absl::StatusOr<DemoPlan> plan_demo(double minutes, uint64_t seed) {
  if (!(minutes >= kMinMinutes)) {
    return absl::InvalidArgumentError(absl::StrCat("--minutes ", minutes, ": at least ", kMinMinutes, " is needed"));
  }
  const double budget_s = minutes * 60.0;
  DemoPlan plan;
  plan.training_budget_s = std::max(20.0, budget_s * (1.0 - kOtherWorkFraction) - kOtherWorkS);
  plan.steps =
      std::clamp<int64_t>(static_cast<int64_t>(plan.training_budget_s * kIdleStepsPerSecond), kMinSteps, kMaxSteps);
  const int64_t samples = plan.steps * kBatchSamples;
  const int64_t per_kind = std::clamp<int64_t>(samples / 2 / 4, kMinItemsPerKind, kMaxItemsPerKind);
  const int64_t held_out = std::min<int64_t>(kHeldOutPerKind, per_kind / 5);
  plan.data.seed = seed;
  plan.data.num_images = per_kind + 2 * held_out;  // train, validation (written, not used by the demo), test
  plan.data.num_videos = per_kind + 2 * held_out;
  plan.data.validation_fraction = static_cast<double>(held_out) / plan.data.num_images;
  plan.data.test_fraction = plan.data.validation_fraction;
  return plan;
}

}  // namespace plm::demo
