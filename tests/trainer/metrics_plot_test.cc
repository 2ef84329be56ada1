#include "trainer/metrics_plot.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <string>

#include "data/image_decode.h"
#include "tests/core/test_temp_dir.h"

namespace plm::trainer {
namespace {

using ::testing::HasSubstr;

std::vector<StepMetrics> history(int64_t steps) {
  std::vector<StepMetrics> h;
  for (int64_t step = 1; step <= steps; ++step) {
    h.push_back({.step = step,
                 .loss = 5.0 / static_cast<double>(step),
                 .grad_norm = 2.0 - 0.01 * static_cast<double>(step),
                 .lr = 1e-3,
                 .tokens = 100,
                 .tokens_per_s = 1000.0 + static_cast<double>(step),
                 .mfu = 0.1,
                 .elapsed_s = static_cast<double>(step)});
  }
  return h;
}

void write_text(const std::filesystem::path& path, const std::string& text) { std::ofstream(path) << text; }

TEST(MetricSeries, AreLossLrGradNormAndTokensPerSecondAgainstStep) {
  const std::vector<Series> series = metric_series(history(3));
  ASSERT_EQ(series.size(), 4u);
  EXPECT_EQ(series[0].name, "loss");
  EXPECT_EQ(series[1].name, "lr");
  EXPECT_EQ(series[2].name, "grad_norm");
  EXPECT_EQ(series[3].name, "tokens_per_s");
  EXPECT_EQ(series[3].x, (std::vector<double>{1, 2, 3}));
  EXPECT_EQ(series[3].y, (std::vector<double>{1001, 1002, 1003}));
}

TEST(MetricPlots, WritesTheStackedPlotAndOnePngPerCurveThatTheProjectDecoderReads) {
  const std::filesystem::path dir = plm::testing::fresh_temp_dir() / "plots";  // created by the writer
  const absl::StatusOr<std::vector<std::filesystem::path>> written = write_metric_plots(history(40), dir);
  ASSERT_TRUE(written.ok()) << written.status();
  const std::vector<std::string> names = {"metrics.png", "loss.png", "lr.png", "grad_norm.png", "tokens_per_s.png"};
  ASSERT_EQ(written->size(), names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ((*written)[i], dir / names[i]);
    const absl::StatusOr<data::RgbImage> png = data::decode_image_file((*written)[i]);
    ASSERT_TRUE(png.ok()) << png.status();
    EXPECT_EQ(png->width, kPlotWidth);
    EXPECT_EQ(png->height, (i == 0 ? 4 : 1) * kPanelHeight) << names[i];
    int line_pixels = 0;
    for (size_t p = 0; p + 2 < png->pixels.size(); p += 3) {
      line_pixels += Rgb{png->pixels[p], png->pixels[p + 1], png->pixels[p + 2]} == kLineColor;
    }
    const PlotArea area = panel_plot_area(0);
    EXPECT_GE(line_pixels, area.right - area.left + 1) << names[i] << ": a curve spans the plot width";
  }
}

TEST(ReadMetricsJsonl, ReadsEveryStepAndLeavesOutALineStillBeingWritten) {
  const std::filesystem::path path = plm::testing::fresh_temp_dir() / "metrics.jsonl";
  write_text(path, "{\"step\": 1, \"loss\": 2.5, \"lr\": 0.001}\n{\"step\": 2, \"loss\": 2.0}\n{\"step\": 3, \"lo");
  const absl::StatusOr<std::vector<StepMetrics>> read = read_metrics_jsonl(path);
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->size(), 2u);
  EXPECT_EQ((*read)[1].step, 2);
  EXPECT_EQ((*read)[1].loss, 2.0);
  EXPECT_TRUE(std::isnan((*read)[1].lr));  // a missing scalar is a gap in its curve
}

TEST(ReadMetricsJsonl, ABadLineIsAnErrorNamingFileAndLine) {
  const std::filesystem::path path = plm::testing::fresh_temp_dir() / "metrics.jsonl";
  write_text(path, "{\"step\": 1, \"loss\": 2.5}\n[1, 2]\n");
  const absl::StatusOr<std::vector<StepMetrics>> read = read_metrics_jsonl(path);
  ASSERT_FALSE(read.ok());
  EXPECT_THAT(read.status().message(), HasSubstr("metrics.jsonl:2: not a metrics line"));
}

TEST(ReadMetricsJsonl, NoStepsOrNoFileIsAnError) {
  const std::filesystem::path dir = plm::testing::fresh_temp_dir();
  write_text(dir / "empty.jsonl", "");
  EXPECT_THAT(read_metrics_jsonl(dir / "empty.jsonl").status().message(), HasSubstr("empty.jsonl: no steps"));
  EXPECT_THAT(read_metrics_jsonl(dir / "missing.jsonl").status().message(), HasSubstr("missing.jsonl"));
}

}  // namespace
}  // namespace plm::trainer
