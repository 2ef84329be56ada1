#include "demo/progress_bar.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

namespace plm::demo {
namespace {

using ::testing::HasSubstr;

// What a bar printed to a file (not a terminal: one plain line per tenth, then the last line).
std::string printed(const std::function<void(ProgressBar&)>& use, int64_t total) {
  std::FILE* file = std::tmpfile();
  {
    ProgressBar bar("work", total, file);
    use(bar);
  }
  std::rewind(file);
  std::string text;
  char buffer[256];
  while (std::fgets(buffer, sizeof(buffer), file) != nullptr) text += buffer;
  std::fclose(file);
  return text;
}

int count_lines(const std::string& text) { return static_cast<int>(std::count(text.begin(), text.end(), '\n')); }

TEST(ProgressBar, CellsFillInProportion) {
  EXPECT_EQ(ProgressBar::cells(0, 10, 10), "----------");
  EXPECT_EQ(ProgressBar::cells(5, 10, 10), "#####-----");
  EXPECT_EQ(ProgressBar::cells(10, 10, 10), "##########");
  EXPECT_EQ(ProgressBar::cells(12, 10, 4), "####");  // clamped
}

TEST(ProgressBar, OutsideATerminalPrintsOneLinePerTenthAndTheEnd) {
  const std::string text = printed(
      [](ProgressBar& bar) {
        for (int i = 1; i <= 100; ++i) bar.update(i);
        bar.finish("done");
      },
      100);
  EXPECT_EQ(count_lines(text), 10 + 1);  // tenths 0.1 .. 0.9 at i = 10 .. 90, i = 1 in tenth 0, the end
  EXPECT_THAT(text, HasSubstr("work       [##############################] 100% 100/100  done\n"));
  EXPECT_EQ(text.find('\r'), std::string::npos);
}

TEST(ProgressBar, FinishShowsWhereTheWorkStopped) {
  const std::string text = printed(
      [](ProgressBar& bar) {
        bar.update(30);
        bar.finish("stopped");
        bar.finish("again");  // ignored
        bar.update(40);       // ignored
      },
      80);
  EXPECT_THAT(text, HasSubstr(" 37% 30/80  stopped\n"));
  EXPECT_EQ(text.find("again"), std::string::npos);
  EXPECT_EQ(text.find("40/80"), std::string::npos);
}

}  // namespace
}  // namespace plm::demo
