// The training curves of a run as PNGs (trainer/line_plot.h draws them): `plm train` writes
// output_dir/metrics.png at the end of a run, and `plm plot METRICS.jsonl --out DIR` writes the same
// metrics.png plus one PNG per curve from any metrics.jsonl, also one still being written.
#pragma once

#include <filesystem>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "trainer/line_plot.h"
#include "trainer/metrics_log.h"

namespace plm::trainer {

// loss (log scale), lr, grad_norm (log scale) and tokens_per_s against step, in that order.
std::vector<Series> metric_series(const std::vector<StepMetrics>& history);

// All the curves stacked in one PNG at `path` (replaced atomically).
absl::Status write_metrics_png(const std::vector<StepMetrics>& history, const std::filesystem::path& path);

// out_dir/metrics.png and out_dir/<curve>.png for each curve (loss.png, lr.png, grad_norm.png,
// tokens_per_s.png); returns the files written. out_dir is created.
absl::StatusOr<std::vector<std::filesystem::path>> write_metric_plots(const std::vector<StepMetrics>& history,
                                                                      const std::filesystem::path& out_dir);

}  // namespace plm::trainer
