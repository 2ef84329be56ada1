// TP region boundaries on local ranks with rank-dependent values.
#include "distributed/tp_regions.h"

#include <gtest/gtest.h>

#include <vector>

#include "distributed/local_communicator.h"
#include "tests/core/test_util.h"

namespace plm::distributed {
namespace {

// Element (row, col) of rank r's block: 1000 r + 10 row + col.
OwnedTensor rank_block(int rank, int64_t rows, int64_t cols) {
  OwnedTensor t({rows, cols}, DType::kF32);
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) t.data_as<float>()[i * cols + j] = static_cast<float>(1000 * rank + 10 * i + j);
  }
  return t;
}

class TpRegions : public ::testing::TestWithParam<int> {};

TEST_P(TpRegions, GatherThenTakeRoundTrips) {
  const int tp = GetParam();
  run_local_ranks(tp, [&](Communicator& comm) {
    const int64_t rows = 3, cols = 2;
    OwnedTensor mine = rank_block(comm.rank(), rows, cols);
    OwnedTensor gathered({rows, cols * tp}, DType::kF32);
    gather_tp_blocks(gathered, mine, comm);
    for (int r = 0; r < tp; ++r) {
      OwnedTensor expected = rank_block(r, rows, cols);
      OwnedTensor got({rows, cols}, DType::kF32);
      copy_tensor(got, gathered.view().slice(1, r * cols, (r + 1) * cols));
      EXPECT_EQ(testing::max_abs_diff(got, expected), 0.0f) << "block " << r << " on rank " << comm.rank();
    }
    OwnedTensor back({rows, cols}, DType::kF32);
    take_tp_block(back, gathered, comm);
    EXPECT_EQ(testing::max_abs_diff(back, mine), 0.0f);
  });
}

TEST_P(TpRegions, ReduceAndCopyBackwardSum) {
  const int tp = GetParam();
  run_local_ranks(tp, [&](Communicator& comm) {
    OwnedTensor y = rank_block(comm.rank(), 2, 2);
    reduce_from_tp_forward(y, comm);
    OwnedTensor dx = rank_block(comm.rank(), 2, 2);
    copy_to_tp_backward(dx, comm);
    std::vector<double> expected(4, 0.0);
    for (int r = 0; r < tp; ++r) {
      const std::vector<float> v = testing::to_vector(rank_block(r, 2, 2));
      for (int i = 0; i < 4; ++i) expected[i] += v[i];
    }
    EXPECT_TRUE(testing::all_close(y, expected, 0.0));
    EXPECT_TRUE(testing::all_close(dx, expected, 0.0));
  });
}

INSTANTIATE_TEST_SUITE_P(Ranks, TpRegions, ::testing::Values(1, 2, 4), ::testing::PrintToStringParamName());

}  // namespace
}  // namespace plm::distributed
