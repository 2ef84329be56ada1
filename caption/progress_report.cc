#include "caption/progress_report.h"

#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_format.h"
#include "core/progress.h"

namespace plm::caption {

namespace {

constexpr int kBarWidth = 20;

double seconds(int64_t us) { return static_cast<double>(us) * 1e-6; }

double rate(double count, double s) { return s > 0 ? count / s : 0.0; }

}  // namespace

std::string progress_line(const CaptionCounters& c, double elapsed_s) {
  const double fraction = c.items_total > 0 ? static_cast<double>(c.items_done) / static_cast<double>(c.items_total) : 1.0;
  const int filled = std::clamp(static_cast<int>(fraction * kBarWidth), 0, kBarWidth);
  const std::string bar = std::string(filled, '#') + std::string(kBarWidth - filled, '-');
  const double eta = eta_seconds(c.items_done, elapsed_s, std::max<int64_t>(0, c.items_total - c.items_done));
  return absl::StrFormat("caption %d/%d [%s] %.1f%% | %.2f items/s | %.1f frames/s | %d errors | ETA %s", c.items_done,
                         c.items_total, bar, 100.0 * fraction, rate(static_cast<double>(c.items_done), elapsed_s),
                         rate(static_cast<double>(c.frames), elapsed_s), c.errors, format_hms(eta));
}

std::string summary_text(const CaptionCounters& c, double wall_s, int num_replicas) {
  const int64_t captioned = c.items_done - c.errors;
  const double mean_latency = captioned > 0 ? seconds(c.latency_us) / static_cast<double>(captioned) : 0.0;
  const double step = seconds(c.engine_step_us);
  const auto share = [&](int64_t us) { return step > 0 ? 100.0 * seconds(us) / step : 0.0; };
  return absl::StrFormat(
      "plm caption: %d items (%d captions, %d errors) in %s (%.1f s) on %d replica(s)\n"
      "  throughput: %.3f items/s, %.2f frames/s, %.1f generated tokens/s\n"
      "  mean latency %.2f s per item (decode start to last token); %d prompt + %d generated tokens\n"
      "  decode + preprocess: %.1f worker-s (%.1f ms per item, on the decode threads, overlapped with the engine)\n"
      "  engine: %.1f s in steps: vision tower %.1f s (%.0f%%), decoder forward %.1f s (%.0f%%), other %.0f%%",
      c.items_done, captioned, c.errors, format_hms(wall_s), wall_s, num_replicas,
      rate(static_cast<double>(c.items_done), wall_s), rate(static_cast<double>(c.frames), wall_s),
      rate(static_cast<double>(c.completion_tokens), wall_s), mean_latency, c.prompt_tokens, c.completion_tokens,
      seconds(c.prepare_us), c.items_done > 0 ? 1e3 * seconds(c.prepare_us) / static_cast<double>(c.items_done) : 0.0,
      step, seconds(c.engine_vision_us), share(c.engine_vision_us), seconds(c.engine_forward_us),
      share(c.engine_forward_us), std::max(0.0, 100.0 - share(c.engine_vision_us) - share(c.engine_forward_us)));
}

ProgressPrinter::ProgressPrinter(std::FILE* out, double tty_interval_s, double log_interval_s)
    : out_(out), tty_(::isatty(::fileno(out)) == 1), interval_s_(tty_ ? tty_interval_s : log_interval_s) {}

void ProgressPrinter::update(const CaptionCounters& c, double elapsed_s) {
  if (elapsed_s - last_s_ < interval_s_) return;
  last_s_ = elapsed_s;
  std::fprintf(out_, tty_ ? "\r%s\033[K" : "%s\n", progress_line(c, elapsed_s).c_str());
  std::fflush(out_);
}

void ProgressPrinter::finish(const CaptionCounters& c, double elapsed_s) {
  std::fprintf(out_, tty_ ? "\r%s\033[K\n" : "%s\n", progress_line(c, elapsed_s).c_str());
  std::fflush(out_);
}

}  // namespace plm::caption
