#include "trainer/metrics_plot.h"

#include <string>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "data/image_encode.h"
#include "core/durable_file.h"

namespace plm::trainer {
namespace {

absl::Status write_panels(const std::vector<Series>& panels, const std::filesystem::path& path) {
  PLM_ASSIGN_OR_RETURN(const std::string png, data::encode_png(plot_panels(panels).image()));
  return write_file_durably(path, png);
}

}  // namespace

std::vector<Series> metric_series(const std::vector<StepMetrics>& history) {
  std::vector<Series> series(4);
  series[0].name = "loss";
  series[1].name = "lr";
  series[2].name = "grad_norm";
  series[3].name = "tokens_per_s";
  series[0].log_y = true;  // most of a run happens far below its first steps' loss and gradient norm
  series[2].log_y = true;
  for (const StepMetrics& m : history) {
    for (Series& s : series) s.x.push_back(static_cast<double>(m.step));
    series[0].y.push_back(m.loss);
    series[1].y.push_back(m.lr);
    series[2].y.push_back(m.grad_norm);
    series[3].y.push_back(m.tokens_per_s);
  }
  return series;
}

absl::Status write_metrics_png(const std::vector<StepMetrics>& history, const std::filesystem::path& path) {
  return write_panels(metric_series(history), path);
}

absl::StatusOr<std::vector<std::filesystem::path>> write_metric_plots(const std::vector<StepMetrics>& history,
                                                                      const std::filesystem::path& out_dir) {
  std::error_code error;
  std::filesystem::create_directories(out_dir, error);
  if (error) return absl::InternalError(absl::StrCat(out_dir.string(), ": cannot create: ", error.message()));
  const std::vector<Series> series = metric_series(history);
  std::vector<std::filesystem::path> written = {out_dir / "metrics.png"};
  PLM_RETURN_IF_ERROR(write_panels(series, written.back()));
  for (const Series& s : series) {
    written.push_back(out_dir / (s.name + ".png"));
    PLM_RETURN_IF_ERROR(write_panels({s}, written.back()));
  }
  return written;
}

}  // namespace plm::trainer
