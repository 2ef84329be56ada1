// `plm plot METRICS.jsonl --out DIR`: the training curves of a run (a `plm train` output_dir's metrics.jsonl,
// also while it is still training) as PNGs: DIR/metrics.png with every curve, and DIR/loss.png, lr.png,
// grad_norm.png, tokens_per_s.png (trainer/metrics_plot.h).
#include <cstdio>
#include <memory>
#include <string>

#include "apps/command.h"
#include "core/status_macros.h"
#include "trainer/metrics_log.h"
#include "trainer/metrics_plot.h"

namespace plm::apps {
namespace {

struct PlotOptions {
  std::string metrics;
  std::string out_dir;
};

absl::Status run_plot(const PlotOptions& o) {
  PLM_ASSIGN_OR_RETURN(const std::vector<trainer::StepMetrics> history, trainer::read_metrics_jsonl(o.metrics));
  PLM_ASSIGN_OR_RETURN(const std::vector<std::filesystem::path> written,
                       trainer::write_metric_plots(history, o.out_dir));
  std::printf("%s: %zu steps (%lld to %lld)\n", o.metrics.c_str(), history.size(),
              static_cast<long long>(history.front().step), static_cast<long long>(history.back().step));
  for (const std::filesystem::path& path : written) std::printf("  %s\n", path.c_str());
  return absl::OkStatus();
}

}  // namespace

void add_plot_command(CLI::App& app, CommandMain* selected) {
  auto o = std::make_shared<PlotOptions>();
  CLI::App* plot =
      app.add_subcommand("plot", "Plot a training run's metrics.jsonl (loss, lr, grad norm, tokens/s) as PNGs");
  plot->add_option("metrics", o->metrics, "metrics.jsonl of a plm train output_dir")->required();
  plot->add_option("--out", o->out_dir, "directory for the PNGs (created)")->required();
  plot->callback([selected, o] {
    *selected = [o] {
      const absl::Status status = run_plot(*o);
      if (status.ok()) return 0;
      std::fprintf(stderr, "plm plot: %s\n", std::string(status.message()).c_str());
      return 1;
    };
  });
}

}  // namespace plm::apps
