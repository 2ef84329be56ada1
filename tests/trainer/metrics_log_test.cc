#include "trainer/metrics_log.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/image_decode.h"
#include "data/read_file.h"
#include "tests/model/model_test_util.h"
#include "trainer/line_plot.h"
#include "tests/trainer/tfevents_reader.h"

namespace plm::trainer {
namespace {

using ::plm::model::testing::fresh_temp_dir;
using ::plm::trainer::testing::DecodedEvent;
using ::plm::trainer::testing::read_tfevents;

StepMetrics metrics_for(int64_t step) {
  return {.step = step,
          .loss = 3.0 / static_cast<double>(step),
          .grad_norm = 1.0 + 0.1 * static_cast<double>(step),
          .lr = 1e-4 * static_cast<double>(step),
          .tokens = 1000 * step,
          .tokens_per_s = 512.5,
          .mfu = 0.25,
          .elapsed_s = 2.0 * static_cast<double>(step)};
}

std::vector<nlohmann::json> jsonl_lines(const std::filesystem::path& path) {
  const absl::StatusOr<std::string> text = data::read_file(path);
  EXPECT_TRUE(text.ok()) << text.status();
  std::vector<nlohmann::json> lines;
  size_t begin = 0;
  while (text.ok() && begin < text->size()) {
    const size_t end = text->find('\n', begin);
    EXPECT_NE(end, std::string::npos) << "unterminated line";
    if (end == std::string::npos) break;
    lines.push_back(nlohmann::json::parse(text->substr(begin, end - begin)));
    begin = end + 1;
  }
  return lines;
}

std::vector<std::filesystem::path> event_files(const std::filesystem::path& tb_dir) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(tb_dir)) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

TEST(MetricsLog, WritesOneFlushedJsonObjectPerStep) {
  const std::filesystem::path dir = fresh_temp_dir() / "out";
  absl::StatusOr<std::unique_ptr<MetricsLog>> log = MetricsLog::open(dir, 0);
  ASSERT_TRUE(log.ok()) << log.status();
  for (int64_t step = 1; step <= 3; ++step) {
    ASSERT_TRUE((*log)->append(metrics_for(step)).ok());
    // Flushed per line: another reader sees the line before the log is closed.
    EXPECT_EQ(jsonl_lines(dir / "metrics.jsonl").size(), static_cast<size_t>(step));
  }
  const std::vector<nlohmann::json> lines = jsonl_lines(dir / "metrics.jsonl");
  ASSERT_EQ(lines.size(), 3u);
  for (const char* key : {"step", "loss", "grad_norm", "lr", "tokens", "tokens_per_s", "mfu", "elapsed_s"}) {
    EXPECT_TRUE(lines[1].contains(key)) << key;
  }
  EXPECT_EQ(lines[1]["step"], 2);
  EXPECT_DOUBLE_EQ(lines[1]["loss"].get<double>(), 1.5);
  EXPECT_DOUBLE_EQ(lines[1]["lr"].get<double>(), 2e-4);
  EXPECT_EQ(lines[1]["tokens"], 2000);
  EXPECT_DOUBLE_EQ(lines[2]["elapsed_s"].get<double>(), 6.0);
}

TEST(MetricsLog, NonFiniteLossIsWrittenAsNull) {
  const std::filesystem::path dir = fresh_temp_dir();
  auto log = MetricsLog::open(dir, 0);
  ASSERT_TRUE(log.ok());
  StepMetrics m = metrics_for(1);
  m.loss = std::numeric_limits<double>::quiet_NaN();
  ASSERT_TRUE((*log)->append(m).ok());
  EXPECT_TRUE(jsonl_lines(dir / "metrics.jsonl")[0]["loss"].is_null());
}

TEST(MetricsLog, ResumeDropsLinesAfterTheResumedStepAndATornLine) {
  const std::filesystem::path dir = fresh_temp_dir();
  {
    auto log = MetricsLog::open(dir, 0);
    ASSERT_TRUE(log.ok());
    for (int64_t step = 1; step <= 5; ++step) ASSERT_TRUE((*log)->append(metrics_for(step)).ok());
  }
  {  // a kill -9 in the middle of writing step 6
    std::ofstream out(dir / "metrics.jsonl", std::ios::app);
    out << R"({"step": 6, "loss": 0.)";
  }
  auto resumed = MetricsLog::open(dir, 3);  // the last checkpoint was step 3
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  ASSERT_EQ((*resumed)->history().size(), 3u);
  EXPECT_EQ((*resumed)->history().back().step, 3);
  EXPECT_DOUBLE_EQ((*resumed)->history().back().loss, 1.0);
  for (int64_t step = 4; step <= 6; ++step) ASSERT_TRUE((*resumed)->append(metrics_for(step)).ok());

  const std::vector<nlohmann::json> lines = jsonl_lines(dir / "metrics.jsonl");
  ASSERT_EQ(lines.size(), 6u);
  for (size_t i = 0; i < lines.size(); ++i) EXPECT_EQ(lines[i]["step"], static_cast<int64_t>(i + 1));

  auto fresh = MetricsLog::open(dir, 0);  // a fresh run in the same directory starts an empty log
  ASSERT_TRUE(fresh.ok());
  EXPECT_TRUE((*fresh)->history().empty());
  EXPECT_TRUE(jsonl_lines(dir / "metrics.jsonl").empty());
}

TEST(MetricsLog, TensorBoardEventsDecode) {
  const std::filesystem::path dir = fresh_temp_dir();
  {
    auto log = MetricsLog::open(dir, 0);
    ASSERT_TRUE(log.ok());
    for (int64_t step = 1; step <= 3; ++step) ASSERT_TRUE((*log)->append(metrics_for(step)).ok());
  }
  const std::vector<std::filesystem::path> files = event_files(dir / "tb");
  ASSERT_EQ(files.size(), 1u);
  EXPECT_THAT(files[0].filename().string(), ::testing::StartsWith("events.out.tfevents."));
  const absl::StatusOr<std::vector<DecodedEvent>> events = read_tfevents(files[0]);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), 5u);  // file_version, SessionLog START, 3 steps

  EXPECT_EQ((*events)[0].file_version, "brain.Event:2");
  EXPECT_GT((*events)[0].wall_time, 1.6e9);
  EXPECT_EQ((*events)[1].session_log_status, 1);  // START
  EXPECT_EQ((*events)[1].step, 1);
  for (int64_t step = 1; step <= 3; ++step) {
    const DecodedEvent& e = (*events)[1 + step];
    EXPECT_EQ(e.step, step);
    EXPECT_FALSE(e.session_log_status.has_value());
    const StepMetrics m = metrics_for(step);
    const std::vector<std::pair<std::string, float>> expected = {
        {"train/loss", static_cast<float>(m.loss)},
        {"train/grad_norm", static_cast<float>(m.grad_norm)},
        {"train/lr", static_cast<float>(m.lr)},
        {"train/tokens", static_cast<float>(m.tokens)},
        {"train/tokens_per_s", static_cast<float>(m.tokens_per_s)},
        {"train/mfu", static_cast<float>(m.mfu)}};
    EXPECT_EQ(e.scalars, expected) << "step " << step;
  }
}

TEST(MetricsLog, ResumedRunStartsANewEventFileThatPurgesTheStaleTail) {
  const std::filesystem::path dir = fresh_temp_dir();
  {
    auto log = MetricsLog::open(dir, 0);
    ASSERT_TRUE(log.ok());
    for (int64_t step = 1; step <= 4; ++step) ASSERT_TRUE((*log)->append(metrics_for(step)).ok());
  }
  {
    auto log = MetricsLog::open(dir, 2);
    ASSERT_TRUE(log.ok());
    ASSERT_TRUE((*log)->append(metrics_for(3)).ok());
  }
  const std::vector<std::filesystem::path> files = event_files(dir / "tb");
  ASSERT_EQ(files.size(), 2u);
  const absl::StatusOr<std::vector<DecodedEvent>> second = read_tfevents(files[1]);
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_EQ(second->size(), 3u);
  EXPECT_EQ((*second)[1].session_log_status, 1);
  EXPECT_EQ((*second)[1].step, 3);  // TensorBoard drops earlier files' events with step >= 3
  EXPECT_EQ((*second)[2].step, 3);
}

TEST(MetricsLog, PlotIsAPngOfFourPanels) {
  const std::filesystem::path dir = fresh_temp_dir();
  auto log = MetricsLog::open(dir, 0);
  ASSERT_TRUE(log.ok());
  for (int64_t step = 1; step <= 50; ++step) ASSERT_TRUE((*log)->append(metrics_for(step)).ok());
  ASSERT_TRUE((*log)->write_plot().ok());
  const absl::StatusOr<data::RgbImage> png = data::decode_image_file(dir / "metrics.png");
  ASSERT_TRUE(png.ok()) << png.status();
  EXPECT_EQ(png->width, kPlotWidth);
  EXPECT_EQ(png->height, 4 * kPanelHeight);  // loss, lr, grad_norm, tokens_per_s
  int line_pixels = 0;
  for (size_t i = 0; i + 2 < png->pixels.size(); i += 3) {
    line_pixels += Rgb{png->pixels[i], png->pixels[i + 1], png->pixels[i + 2]} == kLineColor;
  }
  const PlotArea area = panel_plot_area(0);
  EXPECT_GE(line_pixels, 4 * (area.right - area.left + 1));  // four curves spanning the plot width
}

}  // namespace
}  // namespace plm::trainer
