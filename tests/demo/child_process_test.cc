#include "demo/child_process.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <thread>

#include "data/read_file.h"
#include "tests/core/test_temp_dir.h"

namespace plm::demo {
namespace {

using ::testing::HasSubstr;

TEST(ChildProcess, RunsWithTheExtraEnvironmentAndLogsItsOutput) {
  const std::filesystem::path log = plm::testing::fresh_temp_dir() / "child.log";
  absl::StatusOr<std::unique_ptr<ChildProcess>> child =
      ChildProcess::start({"/bin/sh", "-c", "echo out $GREETING; echo err >&2; exit 3"}, {{"GREETING", "hello"}}, log);
  ASSERT_TRUE(child.ok()) << child.status();
  EXPECT_EQ((*child)->wait(), 3);
  EXPECT_EQ((*child)->poll(), 3);
  const absl::StatusOr<std::string> text = data::read_file(log);
  ASSERT_TRUE(text.ok());
  EXPECT_THAT(*text, HasSubstr("out hello\n"));
  EXPECT_THAT(*text, HasSubstr("err\n"));
}

TEST(ChildProcess, SignalGroupReachesWhatTheChildStarted) {
  const std::filesystem::path log = plm::testing::fresh_temp_dir() / "child.log";
  // The shell waits for a sleep it started: only a signal to the whole group ends both at once.
  absl::StatusOr<std::unique_ptr<ChildProcess>> child =
      ChildProcess::start({"/bin/sh", "-c", "sleep 60 & wait"}, {}, log);
  ASSERT_TRUE(child.ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ((*child)->poll(), std::nullopt);
  const auto start = std::chrono::steady_clock::now();
  (*child)->signal_group(SIGTERM);
  EXPECT_EQ((*child)->wait(), 128 + SIGTERM);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
}

TEST(ChildProcess, AMissingProgramExitsWith127) {
  const std::filesystem::path log = plm::testing::fresh_temp_dir() / "child.log";
  absl::StatusOr<std::unique_ptr<ChildProcess>> child = ChildProcess::start({"/nonexistent/program"}, {}, log);
  ASSERT_TRUE(child.ok());
  EXPECT_EQ((*child)->wait(), 127);
  EXPECT_THAT(ChildProcess::start({"/bin/true"}, {}, "/nonexistent/dir/log").status().message(),
              HasSubstr("/nonexistent/dir/log: cannot create"));
}

TEST(LogTail, KeepsTheLastLines) {
  const std::filesystem::path log = plm::testing::fresh_temp_dir() / "x.log";
  absl::StatusOr<std::unique_ptr<ChildProcess>> child =
      ChildProcess::start({"/bin/sh", "-c", "for i in 1 2 3 4 5; do echo line $i; done"}, {}, log);
  ASSERT_TRUE(child.ok());
  ASSERT_EQ((*child)->wait(), 0);
  EXPECT_EQ(log_tail(log, 2), "line 4\nline 5");
  EXPECT_EQ(log_tail("/nonexistent.log"), "");
}

}  // namespace
}  // namespace plm::demo
