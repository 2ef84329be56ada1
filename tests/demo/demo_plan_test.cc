#include "demo/demo_plan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace plm::demo {
namespace {

using ::testing::HasSubstr;

TEST(DemoPlan, MoreMinutesTrainLongerOnMoreData) {
  int64_t previous_steps = 0, previous_items = 0;
  for (const double minutes : {1.0, 2.0, 5.0, 10.0}) {
    const absl::StatusOr<DemoPlan> plan = plan_demo(minutes, 1);
    ASSERT_TRUE(plan.ok()) << plan.status();
    EXPECT_GE(plan->steps, previous_steps) << minutes;
    EXPECT_GE(plan->data.num_images, previous_items) << minutes;
    EXPECT_LT(plan->training_budget_s, minutes * 60) << "time is left for the data, the server and the questions";
    EXPECT_EQ(plan->data.num_images, plan->data.num_videos);
    EXPECT_TRUE(data::validate_synth_config(plan->data).ok());
    previous_steps = plan->steps;
    previous_items = plan->data.num_images;
  }
}

TEST(DemoPlan, TheFullDemoHoldsOutAHundredOfEachKind) {
  const absl::StatusOr<DemoPlan> plan = plan_demo(10, 3);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->data.seed, 3u);
  int64_t test_images = 0, validation_images = 0;
  for (const data::SynthItem& item : data::plan_synthetic_items(plan->data)) {
    if (item.kind != data::MediaKind::kImage) continue;
    test_images += item.split == data::SynthSplit::kTest;
    validation_images += item.split == data::SynthSplit::kValidation;
  }
  EXPECT_EQ(test_images, 100);
  EXPECT_EQ(validation_images, 100);
}

TEST(DemoPlan, LessThanAMinuteIsRefused) {
  EXPECT_THAT(plan_demo(0.5, 1).status().message(), HasSubstr("--minutes 0.5: at least 1"));
}

}  // namespace
}  // namespace plm::demo
