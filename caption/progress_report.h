// What a caption job tells its user: a progress bar (items done of total, rate in items/s and frames/s, errors,
// ETA) redrawn in place on a terminal or printed as a plain line now and then into a log, and the summary at the
// end. Formatting is pure; ProgressPrinter is not thread-safe (the job's main thread prints).
#pragma once

#include <cstdio>
#include <string>

#include "caption/caption_counters.h"

namespace plm::caption {

// "caption 120/1000 [##----------] 12.0% | 3.10 items/s | 24.8 frames/s | 2 errors | ETA 0:04:44"
std::string progress_line(const CaptionCounters& c, double elapsed_s);

// Items, errors, wall time, mean latency, throughput, and where the time went.
std::string summary_text(const CaptionCounters& c, double wall_s, int num_replicas);

class ProgressPrinter {
 public:
  // On a terminal the line is redrawn at most every `tty_interval_s`; elsewhere a line every `log_interval_s`.
  explicit ProgressPrinter(std::FILE* out, double tty_interval_s = 0.5, double log_interval_s = 10.0);
  ProgressPrinter(const ProgressPrinter&) = delete;
  ProgressPrinter& operator=(const ProgressPrinter&) = delete;

  void update(const CaptionCounters& c, double elapsed_s);
  // The final state, always printed, ending the line.
  void finish(const CaptionCounters& c, double elapsed_s);

 private:
  std::FILE* out_;
  bool tty_;
  double interval_s_;
  double last_s_ = -1e9;
};

}  // namespace plm::caption
