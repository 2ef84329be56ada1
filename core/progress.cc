#include "core/progress.h"

#include <cmath>
#include <cstdio>
#include <limits>

#include "core/check.h"

namespace plm {

std::string format_hms(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "-:--:--";
  const auto total = static_cast<long long>(std::llround(seconds));
  char text[32];
  std::snprintf(text, sizeof(text), "%lld:%02lld:%02lld", total / 3600, (total / 60) % 60, total % 60);
  return text;
}

double eta_seconds(int64_t units_done, double seconds_taken, int64_t units_left) {
  PLM_CHECK_GE(units_left, 0);
  if (units_left == 0) return 0.0;
  if (units_done <= 0) return std::numeric_limits<double>::quiet_NaN();
  return seconds_taken / static_cast<double>(units_done) * static_cast<double>(units_left);
}

}  // namespace plm
