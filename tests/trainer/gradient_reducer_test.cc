// GradientReducer on in-process ranks: bucketed reductions started while "backward" is still marking progress
// give exactly the plain all-reduce (ZeRO-0/1) or each rank's shard of it (ZeRO-2), for bucket sizes that do
// and do not divide the buffer, with and without the background thread.
#include "trainer/gradient_reducer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "distributed/local_communicator.h"

namespace plm::trainer {
namespace {

constexpr int64_t kNumel = 53;

// Rank r's gradient element i: distinct per rank and element, exact in f32 sums.
float value(int rank, int64_t i) { return static_cast<float>((rank + 1) * 1000 + i); }

struct Case {
  int ranks;
  int zero;
  int64_t bucket;
  bool background;
};

class GradientReducerCases : public ::testing::TestWithParam<Case> {};

TEST_P(GradientReducerCases, EqualsThePlainReduction) {
  const Case c = GetParam();
  std::vector<std::vector<float>> results(static_cast<size_t>(c.ranks));
  distributed::run_local_ranks(c.ranks, [&](distributed::Communicator& dp) {
    OwnedTensor grads({kNumel}, DType::kF32);
    std::vector<Range> shards;
    for (int r = 0; r < dp.size(); ++r) shards.push_back(shard_range(kNumel, r, dp.size()));
    GradientReducer reducer(dp, grads.view(), shards, c.zero, c.bucket, c.background);
    // "Backward": writes the buffer from the end in uneven pieces, marking each piece final.
    for (int64_t end = kNumel, piece = 1; end > 0; end -= piece, piece = piece % 9 + 2) {
      const int64_t begin = std::max<int64_t>(0, end - piece);
      for (int64_t i = begin; i < end; ++i) grads.data_as<float>()[i] = value(dp.rank(), i);
      reducer.mark_final_from(begin);
      if (dp.rank() == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));  // ranks at different paces
    }
    reducer.finish();
    results[static_cast<size_t>(dp.rank())].assign(grads.data_as<float>(), grads.data_as<float>() + kNumel);
  });
  for (int r = 0; r < c.ranks; ++r) {
    const Range mine = c.zero == 2 ? shard_range(kNumel, r, c.ranks) : Range{0, kNumel};
    for (int64_t i = mine.begin; i < mine.end; ++i) {
      float want = 0.0f;
      for (int q = 0; q < c.ranks; ++q) want += value(q, i);
      ASSERT_EQ(results[static_cast<size_t>(r)][static_cast<size_t>(i)], want) << "rank " << r << " element " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, GradientReducerCases,
    ::testing::Values(Case{1, 0, 8, true}, Case{2, 0, 8, true}, Case{2, 1, 53, true}, Case{2, 2, 8, true},
                      Case{3, 2, 5, true}, Case{4, 2, 7, false}, Case{4, 0, 100, false}),
    [](const ::testing::TestParamInfo<Case>& info) {
      return "np" + std::to_string(info.param.ranks) + "_zero" + std::to_string(info.param.zero) + "_bucket" +
             std::to_string(info.param.bucket) + (info.param.background ? "_background" : "_inline");
    });

}  // namespace
}  // namespace plm::trainer
