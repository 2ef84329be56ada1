#include "demo/progress_bar.h"

#include <unistd.h>

#include <algorithm>

#include "core/check.h"

namespace plm::demo {
namespace {

constexpr int kBarCells = 30;
constexpr auto kRedrawInterval = std::chrono::milliseconds(100);

}  // namespace

ProgressBar::ProgressBar(std::string label, int64_t total, std::FILE* out)
    : label_(std::move(label)),
      total_(std::max<int64_t>(total, 1)),
      out_(out),
      terminal_(::isatty(::fileno(out)) == 1) {
  PLM_CHECK_GE(total, 0);
}

std::string ProgressBar::cells(int64_t done, int64_t total, int width) {
  PLM_CHECK(total > 0 && width > 0) << "total " << total << ", width " << width;
  const int64_t filled = std::clamp<int64_t>(done, 0, total) * width / total;
  return std::string(static_cast<size_t>(filled), '#') + std::string(static_cast<size_t>(width - filled), '-');
}

void ProgressBar::update(int64_t done, std::string_view detail) {
  if (finished_) return;
  done_ = std::clamp<int64_t>(done, 0, total_);
  const auto now = std::chrono::steady_clock::now();
  if (terminal_) {
    if (now - last_draw_ < kRedrawInterval) return;
  } else {
    const int tenth = static_cast<int>(done_ * 10 / total_);
    if (tenth == last_tenth_ || done_ == total_) return;  // finish() prints the last line
    last_tenth_ = tenth;
  }
  last_draw_ = now;
  draw(done_, detail, false);
}

void ProgressBar::finish(std::string_view detail) {
  if (finished_) return;
  finished_ = true;
  draw(done_, detail, true);
}

void ProgressBar::draw(int64_t done, std::string_view detail, bool last) {
  const int percent = static_cast<int>(done * 100 / total_);
  std::fprintf(out_, "%s%-10s [%s] %3d%% %lld/%lld%s%.*s%s", terminal_ ? "\r" : "", label_.c_str(),
               cells(done, total_, kBarCells).c_str(), percent, static_cast<long long>(done),
               static_cast<long long>(total_), detail.empty() ? "" : "  ", static_cast<int>(detail.size()),
               detail.data(),
               terminal_ ? "\033[K" : "");  // \033[K clears what a longer earlier line left
  if (last || !terminal_) std::fputc('\n', out_);
  std::fflush(out_);
}

}  // namespace plm::demo
