// ProgressBar: one line on a terminal, "label [#########-----------]  45% 90/200 detail", redrawn in place
// (carriage return) at most every 100 ms and at the end. When the stream is not a terminal (a log file, CI) it
// prints a plain line at every tenth of the way instead, so logs stay readable. Not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace plm::demo {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total, std::FILE* out = stdout);
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void update(int64_t done, std::string_view detail = {});
  // Draws the last update() (the whole bar when the work completed) and ends the line; further calls do nothing.
  void finish(std::string_view detail = {});

  // The bar itself, for tests: `width` cells of '#' (done) and '-' (to do).
  static std::string cells(int64_t done, int64_t total, int width);

 private:
  void draw(int64_t done, std::string_view detail, bool last);

  std::string label_;
  int64_t total_;
  std::FILE* out_;
  bool terminal_;
  bool finished_ = false;
  int64_t done_ = 0;
  int last_tenth_ = -1;  // non-terminal mode: the last tenth printed
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace plm::demo
