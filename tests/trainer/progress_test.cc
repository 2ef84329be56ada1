#include "trainer/progress.h"

#include <gtest/gtest.h>

namespace plm::trainer {
namespace {

TEST(Progress, Line) {
  const StepMetrics m = {.step = 120, .loss = 2.34567, .grad_norm = 1.25, .lr = 2e-5, .tokens_per_s = 12345.4};
  EXPECT_EQ(progress_line(m, 1000, 754),
            "step 120/1000 | loss 2.3457 | grad_norm 1.25 | lr 2.00e-05 | 12345 tok/s | ETA 0:12:34");
}

}  // namespace
}  // namespace plm::trainer
