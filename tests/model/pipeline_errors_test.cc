// An error found by one pipeline stage reaches every stage: PlmModel::forward returns the same error on
// every rank, naming the stage, instead of the other stages waiting for activations forever (in-process
// ranks; a regression shows up as the local watchdog's abort, and ctest's TIMEOUT bounds the rest).
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "distributed/local_communicator.h"
#include "distributed/process_groups.h"
#include "model/plm_model.h"
#include "tests/model/model_test_util.h"

namespace plm::model {
namespace {

using testing::FailsWith;

const std::string kModel = std::string(PLM_SOURCE_DIR) + "/tests/fixtures/models/cls_tied";

struct Layout {
  int tp, pp;
};

void PrintTo(const Layout& l, std::ostream* os) { *os << "tp" << l.tp << "_pp" << l.pp; }

std::string layout_name(const ::testing::TestParamInfo<Layout>& info) { return ::testing::PrintToString(info.param); }

// Runs one forward of `ids` (one sequence) on every rank of a tp x pp layout and returns each world
// rank's status. `cache_len(pp_rank)` sizes each stage's KV cache.
std::vector<absl::Status> forward_on_every_rank(const Layout& l, const std::vector<int32_t>& ids,
                                                const std::function<int64_t(int)>& cache_len) {
  std::vector<absl::Status> statuses(l.tp * l.pp, absl::UnknownError("rank did not finish"));
  distributed::run_local_ranks(l.tp * l.pp, [&](distributed::Communicator& world) {
    const int world_rank = world.rank();
    absl::StatusOr<distributed::ProcessGroups> groups =
        distributed::ProcessGroups::create(world.split(0, world_rank, "world"), l.tp, l.pp);
    ASSERT_TRUE(groups.ok()) << groups.status();
    absl::StatusOr<std::unique_ptr<PlmModel>> model =
        PlmModel::load(kModel, Device::cpu(), {groups->tp.get(), groups->pp.get()});
    ASSERT_TRUE(model.ok()) << model.status();
    std::unique_ptr<KvCache> cache = (*model)->make_cache(1, cache_len(groups->pp->rank()));
    const TokenBatch batch{{{0, 0, static_cast<int64_t>(ids.size())}}};
    statuses[world_rank] = (*model)->forward(ids, batch, /*media=*/{}, *cache, false).status();
  });
  return statuses;
}

class PipelineErrors : public ::testing::TestWithParam<Layout> {};

// Only the first stage sees media: a prompt with an image placeholder but no image rows fails there.
TEST_P(PipelineErrors, MediaMismatchOnTheFirstStageReachesEveryStage) {
  const std::vector<absl::Status> statuses =
      forward_on_every_rank(GetParam(), {128000, 128002, 9906}, [](int) { return 8; });
  for (size_t rank = 0; rank < statuses.size(); ++rank) {
    SCOPED_TRACE("world rank " + std::to_string(rank));
    EXPECT_EQ(statuses[rank].code(), absl::StatusCode::kInvalidArgument) << statuses[rank];
    EXPECT_THAT(statuses[rank], FailsWith("pipeline stage 0 of " + std::to_string(GetParam().pp) +
                                          ": the prompt has 1 image placeholder tokens but the images give 0"));
  }
}

// The last stage's cache is too short for the prompt: the first stage, which would otherwise send its
// activations and wait for logits, fails too.
TEST_P(PipelineErrors, CacheOverflowOnTheLastStageReachesTheFirst) {
  const int last = GetParam().pp - 1;
  const std::vector<absl::Status> statuses =
      forward_on_every_rank(GetParam(), {128000, 9906, 1917}, [last](int stage) { return stage == last ? 2 : 8; });
  for (size_t rank = 0; rank < statuses.size(); ++rank) {
    SCOPED_TRACE("world rank " + std::to_string(rank));
    EXPECT_EQ(statuses[rank].code(), absl::StatusCode::kResourceExhausted) << statuses[rank];
    EXPECT_THAT(statuses[rank], FailsWith("pipeline stage " + std::to_string(last) + " of " + std::to_string(last + 1) +
                                          ": sequence of 3 tokens exceeds the KV cache length 2"));
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, PipelineErrors, ::testing::Values(Layout{1, 2}, Layout{2, 2}), layout_name);

}  // namespace
}  // namespace plm::model
