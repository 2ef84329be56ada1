// MetricsLog: the per-step training record of rank 0. Each append() writes one JSON object as a line of
// output_dir/metrics.jsonl (flushed at once) and the same scalars to a TensorBoard event file under
// output_dir/tb/; write_plot() renders the curves into output_dir/metrics.png (trainer/metrics_plot.h).
// Resume-safe: open(output_dir, resumed_step) keeps only the lines with step <= resumed_step (a fresh run
// passes 0), rewriting metrics.jsonl atomically when it drops any, so a run killed after its last
// checkpoint leaves no duplicate steps; a torn last line is dropped the same way. Not thread-safe.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "trainer/tensorboard_writer.h"

namespace plm::trainer {

struct StepMetrics {
  int64_t step = 0;           // 1-based optimizer step
  double loss = 0.0;          // mean cross-entropy over the step's labelled tokens
  double grad_norm = 0.0;     // global L2 norm before clipping
  double lr = 0.0;            // the learning rate this step used
  int64_t tokens = 0;         // input tokens of the step, all ranks
  double tokens_per_s = 0.0;  // tokens / the step's wall time
  double mfu = 0.0;           // model FLOPs utilisation estimate, in [0, 1]
  double elapsed_s = 0.0;     // training wall time since the first run of this output_dir
  // Pipeline runs (layout.pp > 1): rank 0's stage (stage 0, which alone runs the vision tower) per micro-batch.
  struct Stage0 {
    // Mean forward + backward of a micro-batch with media, and of one without (no vision tower); none: there was none.
    std::optional<double> media_s = std::nullopt;
    std::optional<double> text_s = std::nullopt;
    double transfer_s = 0.0;        // the step's time in transfers to and from stage 1 (waiting included)
  };
  std::optional<Stage0> stage0 = std::nullopt;
};

class MetricsLog {
 public:
  static absl::StatusOr<std::unique_ptr<MetricsLog>> open(const std::filesystem::path& output_dir,
                                                          int64_t resumed_step);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  absl::Status append(const StepMetrics& metrics);
  // output_dir/metrics.png from every step logged so far (kept lines included), replaced atomically.
  absl::Status write_plot() const;
  const std::vector<StepMetrics>& history() const { return history_; }
  const std::filesystem::path& jsonl_path() const { return jsonl_path_; }

 private:
  MetricsLog(std::filesystem::path output_dir, std::vector<StepMetrics> history, std::FILE* jsonl,
             std::unique_ptr<TensorBoardWriter> tensorboard);

  std::filesystem::path output_dir_;
  std::filesystem::path jsonl_path_;
  std::vector<StepMetrics> history_;
  std::FILE* jsonl_;
  std::unique_ptr<TensorBoardWriter> tensorboard_;
};

// The steps of a metrics.jsonl file, in file order; an unterminated last line (a run still writing) is left
// out, any other line that is not a metrics object is an error naming file:line.
absl::StatusOr<std::vector<StepMetrics>> read_metrics_jsonl(const std::filesystem::path& path);

}  // namespace plm::trainer
