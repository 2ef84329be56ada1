// TP x PP layouts of the tiny PLMs on in-process ranks (threads); the same checks run under mpirun in
// parallel_model_mpi_test.cc.
#include <gtest/gtest.h>

#include <mutex>

#include "distributed/local_communicator.h"
#include "model/parallel.h"
#include "tests/model/parallel_checks.h"

namespace plm::model {
namespace {

struct Layout {
  std::string model_dir;
  std::string input;
  int tp, pp;
};

class ParallelModel : public ::testing::TestWithParam<Layout> {};

TEST_P(ParallelModel, MatchesOneRankAndHf) {
  const Layout& l = GetParam();
  std::mutex mutex;
  std::vector<std::string> errors;
  double worst = 0.0;
  distributed::run_local_ranks(l.tp * l.pp, [&](distributed::Communicator& world) {
    double diff = 0.0;
    const std::string e = testing::check_parallel_model(world, l.model_dir, l.input, l.tp, l.pp, &diff);
    std::lock_guard<std::mutex> lock(mutex);
    worst = std::max(worst, diff);
    if (!e.empty()) errors.push_back(e);
  });
  EXPECT_TRUE(errors.empty()) << errors.front();
  RecordProperty("max_relative_logit_diff", std::to_string(worst));
  std::printf("[parallel] %s/%s tp=%d pp=%d: max relative logit diff vs one rank = %.3g\n", l.model_dir.c_str(),
              l.input.c_str(), l.tp, l.pp, worst);
}

std::string layout_name(const ::testing::TestParamInfo<Layout>& info) {
  return info.param.model_dir + "_" + info.param.input + "_tp" + std::to_string(info.param.tp) + "_pp" +
         std::to_string(info.param.pp);
}

INSTANTIATE_TEST_SUITE_P(Layouts, ParallelModel,
                         ::testing::Values(Layout{"cls_tied", "image", 2, 1}, Layout{"cls_tied", "image", 4, 1},
                                           Layout{"cls_tied", "video", 1, 2}, Layout{"cls_tied", "text", 2, 2},
                                           Layout{"nocls_untied_hub45", "image", 2, 1},
                                           Layout{"nocls_untied", "text", 4, 2}),
                         layout_name);

TEST(StageLayers, EvenSplitWithRemainderFirst) {
  EXPECT_EQ(stage_layers(16, 0, 4), std::make_pair(0, 4));
  EXPECT_EQ(stage_layers(16, 3, 4), std::make_pair(12, 16));
  EXPECT_EQ(stage_layers(5, 0, 2), std::make_pair(0, 3));
  EXPECT_EQ(stage_layers(5, 1, 2), std::make_pair(3, 5));
}

}  // namespace
}  // namespace plm::model
