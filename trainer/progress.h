// The progress line rank 0 prints every log_every steps (the caller prints it):
//   step 120/1000 | loss 2.3456 | grad_norm 1.234 | lr 2.00e-05 | 12345 tok/s | ETA 0:12:34
#pragma once

#include <cstdint>
#include <string>

#include "core/progress.h"  // format_hms, eta_seconds
#include "trainer/metrics_log.h"

namespace plm::trainer {

std::string progress_line(const StepMetrics& metrics, int64_t total_steps, double eta_s);

}  // namespace plm::trainer
