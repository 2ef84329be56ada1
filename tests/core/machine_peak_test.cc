// The CPU's physical limits (core/machine_peak.h) that benchmarks report their ratios against: measured, so only
// their sanity is checked here (positive, finite, bf16 at least f32's, the description saying they were measured).
#include "core/machine_peak.h"

#include <gtest/gtest.h>

#include <cmath>

namespace plm {
namespace {

TEST(MachinePeak, CpuComputePeaksAreMeasuredAndPositive) {
  const MachinePeak peak = cpu_compute_peak();
  EXPECT_TRUE(std::isfinite(peak.flops_per_s));
  EXPECT_GT(peak.flops_per_s, 0.0);
  EXPECT_GE(peak.bf16_flops_per_s, peak.flops_per_s);
  EXPECT_NE(peak.description.find("GFLOP/s"), std::string::npos) << peak.description;
  EXPECT_EQ(peak.bytes_per_s, 0.0);  // compute only
}

TEST(MachinePeak, ReadBandwidthIsMeasuredAndPositive) {
  const double read = measure_cpu_read_bytes_per_s();
  EXPECT_TRUE(std::isfinite(read));
  EXPECT_GT(read, 0.0);
}

}  // namespace
}  // namespace plm
