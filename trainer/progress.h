// The progress line rank 0 prints every log_every steps (the caller prints it):
//   step 120/1000 | loss 2.3456 | grad_norm 1.234 | lr 2.00e-05 | 12345 tok/s | ETA 0:12:34
#pragma once

#include <cstdint>
#include <string>

#include "trainer/metrics_log.h"

namespace plm::trainer {

// "h:mm:ss" (hours unbounded), rounded to the second; "-:--:--" when not finite or negative.
std::string format_hms(double seconds);

// Seconds for `steps_left` more steps at the average pace of this run's `steps_done` steps.
double eta_seconds(int64_t steps_done, double seconds_taken, int64_t steps_left);

std::string progress_line(const StepMetrics& metrics, int64_t total_steps, double eta_s);

}  // namespace plm::trainer
