// plm::cpu::embedding_forward/backward on a vocab shard: in-shard rows copied (f32 or widened bf16), others
// zero; gradients added (+=) into the shard's rows, repeated ids summed; checked against finite differences.
#include <utility>
#include <vector>

#include "core/kernels/backends.h"
#include "tests/core/kernels/reference_check.h"
#include "tests/core/test_util.h"

namespace plm {
namespace {

using testing::close_to_reference;
using testing::random_ids;
using testing::random_tensor;
using testing::to_doubles;
using testing::to_vector;

// Row of the shard [vocab_start, vocab_start + vocab) holding `id`, or -1 outside it.
int64_t shard_row(float id, int64_t vocab_start, int64_t vocab) {
  const int64_t row = static_cast<int64_t>(id) - vocab_start;
  return row >= 0 && row < vocab ? row : -1;
}

std::vector<double> reference_forward(Tensor table, Tensor ids, int64_t vocab_start) {
  const int64_t vocab = table.size(0), dim = table.size(1);
  const std::vector<float> id = to_vector(ids);
  const std::vector<double> t = to_doubles(table);
  std::vector<double> out(id.size() * dim);
  for (size_t i = 0; i < id.size(); ++i) {
    const int64_t row = shard_row(id[i], vocab_start, vocab);
    for (int64_t d = 0; row >= 0 && d < dim; ++d) out[i * dim + d] = t[row * dim + d];
  }
  return out;
}

// dtable0 + the sum of dout rows per in-shard id, in double.
std::vector<double> reference_backward(Tensor dtable0, Tensor ids, Tensor dout, int64_t vocab_start) {
  const int64_t vocab = dtable0.size(0), dim = dtable0.size(1);
  std::vector<double> expected = to_doubles(dtable0);
  const std::vector<float> id = to_vector(ids), g = to_vector(dout);
  for (size_t i = 0; i < id.size(); ++i) {
    const int64_t row = shard_row(id[i], vocab_start, vocab);
    for (int64_t d = 0; row >= 0 && d < dim; ++d) expected[row * dim + d] += g[i * dim + d];
  }
  return expected;
}

constexpr int64_t kVocab = 17, kDim = 33, kVocabStart = 10, kNumIds = 65;

// ids drawn from [0, 40): some below the shard [10, 27), some in it, some above.
OwnedTensor shard_ids() { return random_ids({kNumIds}, 3, 0, 40); }

TEST(CpuEmbeddingTest, ForwardCopiesShardRowsAndZeroesOthers) {
  OwnedTensor ids = shard_ids();
  OwnedTensor table = random_tensor({kVocab, kDim}, 4);
  OwnedTensor out = random_tensor({kNumIds, kDim}, 5);  // stale values must be overwritten
  cpu::embedding_forward(out, ids, table, kVocabStart);
  EXPECT_TRUE(close_to_reference(out, reference_forward(table, ids, kVocabStart), 0.0, 0.0, "err_out"));
  int64_t num_in_shard = 0;
  for (const float id : to_vector(ids)) num_in_shard += shard_row(id, kVocabStart, kVocab) >= 0;
  EXPECT_GT(num_in_shard, 0);
  EXPECT_LT(num_in_shard, kNumIds);
}

TEST(CpuEmbeddingTest, ForwardWidensBf16TableExactly) {
  // A bf16 table (inference weights) gives its exact values in f32; (257, 129) also runs threaded.
  for (const auto& [num_ids, dim] : {std::pair<int64_t, int64_t>{kNumIds, kDim}, {257, 129}}) {
    OwnedTensor ids = random_ids({num_ids}, 15, 0, 40);
    OwnedTensor table = random_tensor({kVocab, dim}, 16, -1.0f, 1.0f, DType::kBF16);
    OwnedTensor out = random_tensor({num_ids, dim}, 17);
    cpu::embedding_forward(out, ids, table, kVocabStart);
    EXPECT_TRUE(close_to_reference(out, reference_forward(table, ids, kVocabStart), 0.0, 0.0, "err_out_bf16"));
  }
}

TEST(CpuEmbeddingTest, BackwardAddsRowsForRepeatedIds) {
  OwnedTensor ids = shard_ids();
  OwnedTensor dout = random_tensor({kNumIds, kDim}, 6);
  OwnedTensor dtable = random_tensor({kVocab, kDim}, 7);  // += onto existing values
  const std::vector<double> expected = reference_backward(dtable, ids, dout, kVocabStart);
  cpu::embedding_backward(dtable, ids, dout, kVocabStart);
  EXPECT_TRUE(close_to_reference(dtable, expected, 1e-5, 1e-6, "err_dtable"));
}

TEST(CpuEmbeddingTest, LargeShardUsesTheThreadedPath) {
  // (257, 129) exceeds kMinParallelWork; ids in [0, 600) against the shard [250, 550).
  OwnedTensor ids = random_ids({257}, 12, 0, 600);
  OwnedTensor table = random_tensor({300, 129}, 13);
  OwnedTensor out({257, 129}, DType::kF32);
  OwnedTensor dtable = random_tensor({300, 129}, 14);
  cpu::embedding_forward(out, ids, table, 250);
  EXPECT_TRUE(close_to_reference(out, reference_forward(table, ids, 250), 0.0, 0.0, "err_out_large"));
  const std::vector<double> expected = reference_backward(dtable, ids, out, 250);
  cpu::embedding_backward(dtable, ids, out, 250);
  EXPECT_TRUE(close_to_reference(dtable, expected, 1e-5, 1e-6, "err_dtable_large"));
}

TEST(CpuEmbeddingTest, BackwardMatchesFiniteDifferences) {
  OwnedTensor ids = random_ids({9}, 8, 5, 30);
  OwnedTensor table = random_tensor({kVocab, 3}, 9);
  OwnedTensor g = random_tensor({9, 3}, 10);
  OwnedTensor out({9, 3}, DType::kF32);
  const auto loss = [&] {
    cpu::embedding_forward(out, ids, table, kVocabStart);
    return testing::dot(out, g);
  };
  const std::vector<double> numeric = testing::finite_difference(table, loss, 1e-2f);
  OwnedTensor dtable({kVocab, 3}, DType::kF32);
  cpu::fill(dtable, 0.0f);
  cpu::embedding_backward(dtable, ids, g, kVocabStart);
  EXPECT_TRUE(close_to_reference(dtable, numeric, 1e-4, 1e-3, "err_dtable_vs_fd"));
}

TEST(CpuEmbeddingTest, BackwardTwiceDoublesTheGradient) {
  OwnedTensor ids = shard_ids();
  OwnedTensor dout = random_tensor({kNumIds, kDim}, 11);
  OwnedTensor once({kVocab, kDim}, DType::kF32), twice({kVocab, kDim}, DType::kF32);
  cpu::fill(once, 0.0f);
  cpu::fill(twice, 0.0f);
  cpu::embedding_backward(once, ids, dout, kVocabStart);
  cpu::embedding_backward(twice, ids, dout, kVocabStart);
  cpu::embedding_backward(twice, ids, dout, kVocabStart);
  std::vector<double> doubled = to_doubles(once);
  for (double& v : doubled) v *= 2.0;
  EXPECT_TRUE(close_to_reference(twice, doubled, 1e-6, 1e-6, "err_twice"));
}

}  // namespace
}  // namespace plm
