#include "trainer/progress.h"

#include "absl/strings/str_format.h"

namespace plm::trainer {

std::string progress_line(const StepMetrics& m, int64_t total_steps, double eta_s) {
  return absl::StrFormat("step %d/%d | loss %.4f | grad_norm %.4g | lr %.2e | %.0f tok/s | ETA %s", m.step,
                         total_steps, m.loss, m.grad_norm, m.lr, m.tokens_per_s, format_hms(eta_s));
}

}  // namespace plm::trainer
