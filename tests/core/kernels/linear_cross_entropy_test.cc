// The vocab-chunked lm_head + cross-entropy on the CPU against a naive full-logits double reference (V not a
// multiple of the chunk, ignore_index rows), the gradient rule (dhidden written, dweight accumulated), and
// finite differences on hidden and weight.
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

}  // namespace
}  // namespace plm
