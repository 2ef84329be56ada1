// The vocab-chunked lm_head + cross-entropy on the CPU against a naive full-logits double reference (V not a
// multiple of the chunk, ignore_index rows), the gradient rule (dhidden written, dweight accumulated), and
// finite differences on hidden and weight; the vocab-parallel pieces (a shard's statistics and backward at its
// vocab_start, the shards merged) against the same reference.
#include "core/kernels/linear_cross_entropy.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "tests/core/kernels/reference_check.h"
#include "tests/core/test_util.h"

namespace plm {
namespace {

constexpr int32_t kIgnore = -100;

struct Problem {
  OwnedTensor hidden, weight, targets, dloss;  // (N, D), (V, D), (N), (N)
};

Problem make_problem(int64_t rows, int64_t dim, int64_t vocab, uint64_t seed) {
  Problem p{testing::random_tensor({rows, dim}, seed, -1.0f, 1.0f),
            testing::random_tensor({vocab, dim}, seed + 1, -1.0f, 1.0f),
            testing::random_ids({rows}, seed + 2, 0, static_cast<int32_t>(vocab)),
            testing::random_tensor({rows}, seed + 3, 0.5f, 1.5f)};
  p.targets.data_as<int32_t>()[0] = kIgnore;
  p.targets.data_as<int32_t>()[rows - 1] = static_cast<int32_t>(vocab - 1);  // in the short last chunk
  return p;
}

struct Reference {
  std::vector<double> loss, lse, dhidden, dweight;
};

// Full (N, V) logits in double.
Reference reference(const Problem& p) {
  const int64_t rows = p.hidden.size(0), dim = p.hidden.size(1), vocab = p.weight.size(0);
  const float* h = p.hidden.data_as<float>();
  const float* w = p.weight.data_as<float>();
  Reference r{std::vector<double>(rows, 0.0), std::vector<double>(rows, 0.0), std::vector<double>(rows * dim, 0.0),
              std::vector<double>(vocab * dim, 0.0)};
  for (int64_t n = 0; n < rows; ++n) {
    std::vector<double> logits(vocab, 0.0);
    double max_logit = -INFINITY, sum = 0.0;
    for (int64_t v = 0; v < vocab; ++v) {
      for (int64_t d = 0; d < dim; ++d) logits[v] += static_cast<double>(h[n * dim + d]) * w[v * dim + d];
      max_logit = std::max(max_logit, logits[v]);
    }
    for (int64_t v = 0; v < vocab; ++v) sum += std::exp(logits[v] - max_logit);
    r.lse[n] = max_logit + std::log(sum);
    const int32_t target = p.targets.data_as<int32_t>()[n];
    if (target == kIgnore) continue;
    r.loss[n] = r.lse[n] - logits[target];
    for (int64_t v = 0; v < vocab; ++v) {
      const double dlogit = (std::exp(logits[v] - r.lse[n]) - (v == target ? 1.0 : 0.0)) * p.dloss.data_as<float>()[n];
      for (int64_t d = 0; d < dim; ++d) {
        r.dhidden[n * dim + d] += dlogit * w[v * dim + d];
        r.dweight[v * dim + d] += dlogit * h[n * dim + d];
      }
    }
  }
  return r;
}

TEST(LinearCrossEntropy, MatchesFullLogitsReferenceForAnyChunk) {
  const Problem p = make_problem(9, 6, 23, 1);
  const Reference r = reference(p);
  for (const int64_t chunk : {5, 23, 100}) {
    const CrossEntropyOptions options{kIgnore, chunk};
    const std::string tag = "chunk" + std::to_string(chunk);
    OwnedTensor loss({9}, DType::kF32), lse({9}, DType::kF32);
    linear_cross_entropy_forward(loss, lse, p.hidden, p.weight, p.targets, options);
    EXPECT_TRUE(testing::close_to_reference(loss, r.loss, 2e-6, 0.0, tag + "_loss"));
    EXPECT_TRUE(testing::close_to_reference(lse, r.lse, 2e-6, 0.0, tag + "_lse"));
    EXPECT_EQ(loss.data_as<float>()[0], 0.0f) << "ignored row";

    // dhidden starts as garbage (written); dweight starts at `initial` and accumulates twice.
    OwnedTensor dhidden = testing::random_tensor({9, 6}, 50), dweight = testing::random_tensor({23, 6}, 51);
    const std::vector<float> initial = testing::to_vector(dweight);
    linear_cross_entropy_backward(dhidden, dweight, p.dloss, p.hidden, p.weight, p.targets, lse, options);
    linear_cross_entropy_backward(dhidden, dweight, p.dloss, p.hidden, p.weight, p.targets, lse, options);
    std::vector<double> expected_dweight(initial.begin(), initial.end());
    for (size_t i = 0; i < expected_dweight.size(); ++i) expected_dweight[i] += 2.0 * r.dweight[i];
    EXPECT_TRUE(testing::close_to_reference(dhidden, r.dhidden, 2e-6, 0.0, tag + "_dhidden"));
    EXPECT_TRUE(testing::close_to_reference(dweight, expected_dweight, 4e-6, 0.0, tag + "_dweight_twice"));
  }
}

TEST(LinearCrossEntropy, GradientsMatchFiniteDifferences) {
  Problem p = make_problem(3, 4, 7, 10);
  const CrossEntropyOptions options{kIgnore, 3};
  OwnedTensor loss({3}, DType::kF32), lse({3}, DType::kF32);
  const auto weighted_loss = [&] {
    linear_cross_entropy_forward(loss, lse, p.hidden, p.weight, p.targets, options);
    return testing::dot(loss, p.dloss);
  };
  weighted_loss();
  OwnedTensor dhidden({3, 4}, DType::kF32);
  OwnedTensor dweight = testing::tensor_from({7, 4}, std::vector<float>(28, 0.0f));
  linear_cross_entropy_backward(dhidden, dweight, p.dloss, p.hidden, p.weight, p.targets, lse, options);
  EXPECT_TRUE(testing::close_to_reference(dhidden, testing::finite_difference(p.hidden, weighted_loss, 1e-2f), 1e-4,
                                          0.0, "fd_dhidden"));
  EXPECT_TRUE(testing::close_to_reference(dweight, testing::finite_difference(p.weight, weighted_loss, 1e-2f), 1e-4,
                                          0.0, "fd_dweight"));
}

TEST(LinearCrossEntropy, VocabShardsMergeToTheWholeVocabulary) {
  const int64_t rows = 9, dim = 6, vocab = 24, shards = 3, width = vocab / shards;
  const Problem p = make_problem(rows, dim, vocab, 3);
  const Reference r = reference(p);
  OwnedTensor shard_lse({rows, shards}, DType::kF32), target_logit({rows}, DType::kF32);
  OwnedTensor dhidden({rows, dim}, DType::kF32), shard_dhidden({rows, dim}, DType::kF32);
  OwnedTensor dweight = testing::tensor_from({vocab, dim}, std::vector<float>(vocab * dim, 0.0f));
  std::vector<double> target_sum(rows, 0.0);
  for (int64_t k = 0; k < shards; ++k) {
    const CrossEntropyOptions options{kIgnore, 5, k * width};  // chunks of 5 in shards of 8: a short last chunk
    OwnedTensor lse({rows}, DType::kF32), target({rows}, DType::kF32);
    const Tensor weight = p.weight.view().slice(0, k * width, (k + 1) * width);
    linear_cross_entropy_shard_forward(lse, target, p.hidden, weight, p.targets, options);
    for (int64_t n = 0; n < rows; ++n) {
      shard_lse.data_as<float>()[n * shards + k] = lse.data_as<float>()[n];
      target_sum[n] += target.data_as<float>()[n];
    }
  }
  for (int64_t n = 0; n < rows; ++n) target_logit.data_as<float>()[n] = static_cast<float>(target_sum[n]);
  OwnedTensor loss({rows}, DType::kF32), lse({rows}, DType::kF32);
  cross_entropy_merge_shards(loss, lse, shard_lse, target_logit, p.targets, {kIgnore, 5, 0});
  EXPECT_TRUE(testing::close_to_reference(loss, r.loss, 2e-6, 0.0, "merged_loss"));
  EXPECT_TRUE(testing::close_to_reference(lse, r.lse, 2e-6, 0.0, "merged_lse"));
  // Each shard's backward against the whole vocabulary's lse: dhidden sums over the shards, dweight is the shard's rows.
  std::vector<double> dhidden_sum(rows * dim, 0.0);
  for (int64_t k = 0; k < shards; ++k) {
    const CrossEntropyOptions options{kIgnore, 5, k * width};
    const int64_t begin = k * width, end = (k + 1) * width;
    linear_cross_entropy_backward(shard_dhidden, dweight.view().slice(0, begin, end), p.dloss, p.hidden,
                                  p.weight.view().slice(0, begin, end), p.targets, lse, options);
    for (int64_t i = 0; i < rows * dim; ++i) dhidden_sum[i] += shard_dhidden.data_as<float>()[i];
  }
  for (int64_t i = 0; i < rows * dim; ++i) dhidden.data_as<float>()[i] = static_cast<float>(dhidden_sum[i]);
  EXPECT_TRUE(testing::close_to_reference(dhidden, r.dhidden, 2e-6, 0.0, "sharded_dhidden"));
  EXPECT_TRUE(testing::close_to_reference(dweight, r.dweight, 2e-6, 0.0, "sharded_dweight"));

  // One shard: the merge gives the unsharded forward bit for bit.
  OwnedTensor one_lse({rows}, DType::kF32), one_target({rows}, DType::kF32), merged({rows}, DType::kF32);
  OwnedTensor merged_lse({rows}, DType::kF32), whole({rows}, DType::kF32), whole_lse({rows}, DType::kF32);
  const CrossEntropyOptions options{kIgnore, 5};
  linear_cross_entropy_shard_forward(one_lse, one_target, p.hidden, p.weight, p.targets, options);
  cross_entropy_merge_shards(merged, merged_lse, one_lse.view().reshape({rows, 1}), one_target, p.targets, options);
  linear_cross_entropy_forward(whole, whole_lse, p.hidden, p.weight, p.targets, options);
  EXPECT_EQ(testing::to_vector(merged), testing::to_vector(whole));
  EXPECT_EQ(testing::to_vector(merged_lse), testing::to_vector(whole_lse));
}

}  // namespace
}  // namespace plm
