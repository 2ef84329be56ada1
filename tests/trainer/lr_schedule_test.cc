#include "trainer/lr_schedule.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

namespace plm::trainer {
namespace {

LrSchedule make(ScheduleName name, int64_t warmup, int64_t total, int64_t decay = 0) {
  return {.name = name, .lr = 1e-3, .min_lr = 1e-4, .warmup_steps = warmup, .total_steps = total,
          .decay_steps = decay};
}

TEST(LrSchedule, WarmupIsLinearFromLrOverWToLr) {
  for (ScheduleName name : {ScheduleName::kConstant, ScheduleName::kCosine, ScheduleName::kLinear}) {
    const LrSchedule s = make(name, 4, 20);
    EXPECT_DOUBLE_EQ(s.at(1), 2.5e-4) << schedule_name_text(name);
    EXPECT_DOUBLE_EQ(s.at(2), 5e-4);
    EXPECT_DOUBLE_EQ(s.at(3), 7.5e-4);
    EXPECT_DOUBLE_EQ(s.at(4), 1e-3);
  }
}

TEST(LrSchedule, Constant) {
  EXPECT_DOUBLE_EQ(make(ScheduleName::kConstant, 0, 10).at(1), 1e-3);
  EXPECT_DOUBLE_EQ(make(ScheduleName::kConstant, 0, 10).at(10), 1e-3);
  EXPECT_DOUBLE_EQ(make(ScheduleName::kConstant, 3, 10).at(5), 1e-3);
}

TEST(LrSchedule, CosineFromLrToMinLrAfterWarmup) {
  const LrSchedule s = make(ScheduleName::kCosine, 4, 20);  // cosine over k − W in (0, 16]
  EXPECT_DOUBLE_EQ(s.at(12), 5.5e-4);                        // halfway: min + (lr − min)/2
  EXPECT_DOUBLE_EQ(s.at(20), 1e-4);                          // cos(π) = −1: min_lr
  EXPECT_NEAR(s.at(8), 1e-4 + 9e-4 * 0.5 * (1 + std::sqrt(0.5)), 1e-18);  // a quarter: cos(π/4)
  EXPECT_NEAR(s.at(5), 1e-4 + 9e-4 * 0.5 * (1 + std::cos(std::numbers::pi / 16)), 1e-18);
  EXPECT_DOUBLE_EQ(make(ScheduleName::kCosine, 0, 2).at(1), 5.5e-4);
}

TEST(LrSchedule, LinearFromLrToMinLrAfterWarmup) {
  const LrSchedule s = make(ScheduleName::kLinear, 4, 20);
  EXPECT_DOUBLE_EQ(s.at(12), 5.5e-4);
  EXPECT_DOUBLE_EQ(s.at(8), 7.75e-4);
  EXPECT_DOUBLE_EQ(s.at(20), 1e-4);
  EXPECT_DOUBLE_EQ(make(ScheduleName::kLinear, 0, 10).at(10), 1e-4);
}

TEST(LrSchedule, WarmupStableDecay) {
  const LrSchedule s = make(ScheduleName::kWsd, 2, 20, 4);  // warmup 1..2, stable 3..16, decay 17..20
  EXPECT_DOUBLE_EQ(s.at(1), 5e-4);
  EXPECT_DOUBLE_EQ(s.at(2), 1e-3);
  EXPECT_DOUBLE_EQ(s.at(3), 1e-3);
  EXPECT_DOUBLE_EQ(s.at(16), 1e-3);
  EXPECT_DOUBLE_EQ(s.at(17), 7.75e-4);
  EXPECT_DOUBLE_EQ(s.at(18), 5.5e-4);
  EXPECT_DOUBLE_EQ(s.at(20), 1e-4);
  const LrSchedule all_decay = make(ScheduleName::kWsd, 0, 4, 4);
  EXPECT_DOUBLE_EQ(all_decay.at(1), 7.75e-4);
  EXPECT_DOUBLE_EQ(all_decay.at(4), 1e-4);
}

TEST(LrSchedule, AllWarmup) {
  const LrSchedule s = make(ScheduleName::kCosine, 5, 5);
  EXPECT_DOUBLE_EQ(s.at(5), 1e-3);
  EXPECT_DOUBLE_EQ(s.at(1), 2e-4);
}

TEST(LrScheduleDeathTest, StepOutsideTheRun) {
  const LrSchedule s = make(ScheduleName::kConstant, 0, 10);
  EXPECT_DEATH(s.at(0), "outside");
  EXPECT_DEATH(s.at(11), "outside");
}

}  // namespace
}  // namespace plm::trainer
