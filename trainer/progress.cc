#include "trainer/progress.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_format.h"
#include "core/check.h"

namespace plm::trainer {

std::string format_hms(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "-:--:--";
  const auto total = static_cast<int64_t>(std::llround(seconds));
  return absl::StrFormat("%d:%02d:%02d", total / 3600, (total / 60) % 60, total % 60);
}

double eta_seconds(int64_t steps_done, double seconds_taken, int64_t steps_left) {
  PLM_CHECK_GE(steps_left, 0);
  if (steps_left == 0) return 0.0;
  if (steps_done <= 0) return std::numeric_limits<double>::quiet_NaN();
  return seconds_taken / static_cast<double>(steps_done) * static_cast<double>(steps_left);
}

std::string progress_line(const StepMetrics& m, int64_t total_steps, double eta_s) {
  return absl::StrFormat("step %d/%d | loss %.4f | grad_norm %.4g | lr %.2e | %.0f tok/s | ETA %s", m.step,
                         total_steps, m.loss, m.grad_norm, m.lr, m.tokens_per_s, format_hms(eta_s));
}

}  // namespace plm::trainer
