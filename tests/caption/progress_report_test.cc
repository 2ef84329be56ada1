#include "caption/progress_report.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>

namespace plm::caption {
namespace {

TEST(ProgressReport, LineShowsRatesErrorsAndEta) {
  const CaptionCounters c{.items_total = 1000, .items_done = 120, .errors = 2, .frames = 960};
  EXPECT_EQ(progress_line(c, 40.0),
            "caption 120/1000 [##------------------] 12.0% | 3.00 items/s | 24.0 frames/s | 2 errors | ETA 0:04:53");
  EXPECT_EQ(progress_line({}, 0.0), "caption 0/0 [####################] 100.0% | 0.00 items/s | 0.0 frames/s | 0 errors | ETA 0:00:00");
}

TEST(ProgressReport, SummaryHasItemsErrorsWallLatencyThroughputAndTimeShares) {
  const CaptionCounters c{.items_total = 10, .items_done = 10, .errors = 2, .frames = 64, .prompt_tokens = 800,
                          .completion_tokens = 160, .latency_us = 16'000'000, .prepare_us = 5'000'000,
                          .engine_vision_us = 6'000'000, .engine_forward_us = 3'000'000, .engine_step_us = 10'000'000};
  const std::string s = summary_text(c, 20.0, 2);
  EXPECT_THAT(s, ::testing::HasSubstr("10 items (8 captions, 2 errors) in 0:00:20 (20.0 s) on 2 replica(s)"));
  EXPECT_THAT(s, ::testing::HasSubstr("0.500 items/s, 3.20 frames/s, 8.0 generated tokens/s"));
  EXPECT_THAT(s, ::testing::HasSubstr("mean latency 2.00 s per item"));
  EXPECT_THAT(s, ::testing::HasSubstr("5.0 worker-s (500.0 ms per item"));
  EXPECT_THAT(s, ::testing::HasSubstr("vision tower 6.0 s (60%), decoder forward 3.0 s (30%), other 10%"));
}

TEST(ProgressReport, PrinterWritesPlainLinesIntoALog) {
  std::FILE* log = std::tmpfile();
  ASSERT_NE(log, nullptr);
  ProgressPrinter printer(log, 0.5, 10.0);
  const CaptionCounters c{.items_total = 4, .items_done = 1};
  printer.update(c, 1.0);
  printer.update(c, 5.0);  // within the log interval: skipped
  printer.update(c, 12.0);
  printer.finish(c, 13.0);
  std::rewind(log);
  int lines = 0;
  for (int ch; (ch = std::fgetc(log)) != EOF;) lines += ch == '\n';
  std::fclose(log);
  EXPECT_EQ(lines, 3);
}

}  // namespace
}  // namespace plm::caption
