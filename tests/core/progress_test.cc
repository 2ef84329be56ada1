#include "core/progress.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace plm {
namespace {

TEST(Progress, FormatHms) {
  EXPECT_EQ(format_hms(0), "0:00:00");
  EXPECT_EQ(format_hms(59.4), "0:00:59");
  EXPECT_EQ(format_hms(59.6), "0:01:00");
  EXPECT_EQ(format_hms(3723), "1:02:03");
  EXPECT_EQ(format_hms(100 * 3600 + 5), "100:00:05");
  EXPECT_EQ(format_hms(-1), "-:--:--");
  EXPECT_EQ(format_hms(std::numeric_limits<double>::quiet_NaN()), "-:--:--");
}

TEST(Progress, EtaAtTheAveragePace) {
  EXPECT_DOUBLE_EQ(eta_seconds(10, 25.0, 4), 10.0);
  EXPECT_DOUBLE_EQ(eta_seconds(10, 25.0, 0), 0.0);
  EXPECT_TRUE(std::isnan(eta_seconds(0, 0.0, 5)));
}

}  // namespace
}  // namespace plm
