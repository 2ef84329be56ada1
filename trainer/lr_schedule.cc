#include "trainer/lr_schedule.h"

#include <cmath>
#include <numbers>

#include "core/check.h"

namespace plm::trainer {

std::string_view schedule_name_text(ScheduleName name) {
  switch (name) {
    case ScheduleName::kConstant: return "constant";
    case ScheduleName::kCosine: return "cosine";
    case ScheduleName::kLinear: return "linear";
    case ScheduleName::kWsd: return "wsd";
  }
  PLM_CHECK(false) << "unhandled ScheduleName " << static_cast<int>(name);
  return {};
}

double LrSchedule::at(int64_t step) const {
  PLM_CHECK(step >= 1 && step <= total_steps) << "step " << step << " outside [1, " << total_steps << "]";
  PLM_CHECK(warmup_steps >= 0 && warmup_steps <= total_steps) << "warmup_steps " << warmup_steps;
  const double k = static_cast<double>(step);
  if (step <= warmup_steps) return lr * k / static_cast<double>(warmup_steps);

  const double after_warmup = static_cast<double>(step - warmup_steps);
  const double decay_span = static_cast<double>(total_steps - warmup_steps);  // > 0 here: step > W
  switch (name) {
    case ScheduleName::kConstant: return lr;
    case ScheduleName::kCosine:
      return min_lr + (lr - min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * after_warmup / decay_span));
    case ScheduleName::kLinear: return lr + (min_lr - lr) * after_warmup / decay_span;
    case ScheduleName::kWsd: {
      PLM_CHECK(decay_steps >= 1 && decay_steps <= total_steps - warmup_steps) << "decay_steps " << decay_steps;
      const int64_t decay_start = total_steps - decay_steps;
      if (step <= decay_start) return lr;
      return lr + (min_lr - lr) * static_cast<double>(step - decay_start) / static_cast<double>(decay_steps);
    }
  }
  PLM_CHECK(false) << "unhandled ScheduleName " << static_cast<int>(name);
  return 0.0;
}

}  // namespace plm::trainer
