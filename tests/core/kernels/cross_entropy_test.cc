// CPU cross-entropy pieces: chunked online log-sum-exp + finalize against a double full-row reference
// (chunk size not dividing V, ignore_index rows, huge and -inf logits), and the chunk backward against the
// double analytic gradient and central finite differences.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "core/kernels/backends.h"
#include "tests/core/kernels/reference_check.h"
#include "tests/core/test_util.h"

namespace plm {
namespace {

constexpr int32_t kIgnore = -100;
constexpr float kInf = std::numeric_limits<float>::infinity();

// (N, C) view of columns [start, start + C) of a contiguous (N, V) tensor, copied out (chunks are
// contiguous in the real composite, where each chunk has its own logits buffer).
OwnedTensor column_chunk(Tensor logits, int64_t start, int64_t chunk) {
  const int64_t rows = logits.size(0), vocab = logits.size(1);
  OwnedTensor out({rows, chunk}, DType::kF32);
  for (int64_t n = 0; n < rows; ++n) {
    for (int64_t c = 0; c < chunk; ++c)
      out.data_as<float>()[n * chunk + c] = logits.data_as<float>()[n * vocab + start + c];
  }
  return out;
}

struct Loss {
  OwnedTensor loss, lse;
};

// Runs chunk_forward over chunks of `chunk` columns, then finalize.
Loss chunked_loss(Tensor logits, Tensor targets, int64_t chunk) {
  const int64_t rows = logits.size(0), vocab = logits.size(1);
  OwnedTensor running_max = testing::tensor_from({rows}, std::vector<float>(rows, -kInf));
  OwnedTensor running_sum = testing::tensor_from({rows}, std::vector<float>(rows, 0.0f));
  OwnedTensor target_logit = testing::tensor_from({rows}, std::vector<float>(rows, 0.0f));
  for (int64_t start = 0; start < vocab; start += chunk) {
    const OwnedTensor part = column_chunk(logits, start, std::min(chunk, vocab - start));
    cpu::cross_entropy_chunk_forward(running_max, running_sum, target_logit, part, targets, start);
  }
  Loss out{OwnedTensor({rows}, DType::kF32), OwnedTensor({rows}, DType::kF32)};
  cpu::cross_entropy_finalize(out.loss, out.lse, running_max, running_sum, target_logit, targets, kIgnore);
  return out;
}

struct Reference {
  std::vector<double> loss, lse, dlogits;
};

Reference reference(Tensor logits, Tensor targets, Tensor dloss) {
  const int64_t rows = logits.size(0), vocab = logits.size(1);
  const float* x = logits.data_as<float>();
  Reference r{std::vector<double>(rows), std::vector<double>(rows), std::vector<double>(rows * vocab, 0.0)};
  for (int64_t n = 0; n < rows; ++n) {
    double max_x = -INFINITY, sum = 0.0;
    for (int64_t c = 0; c < vocab; ++c) max_x = std::max(max_x, static_cast<double>(x[n * vocab + c]));
    for (int64_t c = 0; c < vocab; ++c) sum += std::exp(x[n * vocab + c] - max_x);
    r.lse[n] = max_x + std::log(sum);
    const int32_t t = targets.data_as<int32_t>()[n];
    if (t == kIgnore) continue;
    r.loss[n] = r.lse[n] - x[n * vocab + t];
    for (int64_t c = 0; c < vocab; ++c) {
      r.dlogits[n * vocab + c] =
          (std::exp(x[n * vocab + c] - r.lse[n]) - (c == t ? 1.0 : 0.0)) * dloss.data_as<float>()[n];
    }
  }
  return r;
}

// dlogits (N, V) assembled from chunk_backward over chunks.
OwnedTensor chunked_backward(Tensor logits, Tensor lse, Tensor targets, Tensor dloss, int64_t chunk) {
  const int64_t rows = logits.size(0), vocab = logits.size(1);
  OwnedTensor dlogits({rows, vocab}, DType::kF32);
  for (int64_t start = 0; start < vocab; start += chunk) {
    const int64_t width = std::min(chunk, vocab - start);
    OwnedTensor part = column_chunk(logits, start, width);
    cpu::cross_entropy_chunk_backward(part, part, lse, targets, dloss, start, kIgnore);  // in place
    for (int64_t n = 0; n < rows; ++n) {
      for (int64_t c = 0; c < width; ++c)
        dlogits.data_as<float>()[n * vocab + start + c] = part.data_as<float>()[n * width + c];
    }
  }
  return dlogits;
}

struct Problem {
  OwnedTensor logits, targets, dloss;
};

Problem make_problem(int64_t rows, int64_t vocab, uint64_t seed) {
  Problem p{testing::random_tensor({rows, vocab}, seed, -4.0f, 4.0f), testing::random_ids({rows}, seed + 1, 0, vocab),
            testing::random_tensor({rows}, seed + 2, 0.5f, 1.5f)};
  p.targets.data_as<int32_t>()[1] = kIgnore;
  p.targets.data_as<int32_t>()[rows - 1] = vocab - 1;  // target in the short last chunk
  return p;
}

TEST(CpuCrossEntropy, ChunkedLossMatchesFullRowReference) {
  Problem p = make_problem(7, 23, 1);
  // Row 3's first chunk is all -inf (masked vocab): its running sum must stay 0 until a finite chunk.
  for (int64_t c = 0; c < 5; ++c) p.logits.data_as<float>()[3 * 23 + c] = -kInf;
  p.targets.data_as<int32_t>()[3] = 9;
  const Reference r = reference(p.logits, p.targets, p.dloss);
  for (const int64_t chunk : {5, 23, 64}) {
    const Loss l = chunked_loss(p.logits, p.targets, chunk);
    const std::string tag = "chunk" + std::to_string(chunk);
    EXPECT_TRUE(testing::close_to_reference(l.loss, r.loss, 2e-6, 0.0, tag + "_loss"));
    EXPECT_TRUE(testing::close_to_reference(l.lse, r.lse, 2e-6, 0.0, tag + "_lse"));
    EXPECT_EQ(l.loss.data_as<float>()[1], 0.0f) << "ignored row";
    const OwnedTensor dlogits = chunked_backward(p.logits, l.lse, p.targets, p.dloss, chunk);
    EXPECT_TRUE(testing::close_to_reference(dlogits, r.dlogits, 1e-6, 0.0, tag + "_dlogits"));
    for (int64_t c = 0; c < 23; ++c) EXPECT_EQ(dlogits.data_as<float>()[23 + c], 0.0f) << "ignored row";
  }
}

TEST(CpuCrossEntropy, StableForLogitsThatOverflowExp) {
  // Shifting every logit by 1000 (exp overflows fp32 beyond 88) leaves the loss unchanged; what remains is
  // the fp32 resolution of the shifted values (ulp(1000) = 6.1e-5).
  Problem p = make_problem(5, 13, 5);
  const Reference r = reference(p.logits, p.targets, p.dloss);
  for (int64_t i = 0; i < p.logits.numel(); ++i) p.logits.data_as<float>()[i] += 1000.0f;
  const Loss l = chunked_loss(p.logits, p.targets, 4);
  EXPECT_TRUE(testing::close_to_reference(l.loss, r.loss, 2e-4, 0.0, "shifted_loss"));
  const OwnedTensor dlogits = chunked_backward(p.logits, l.lse, p.targets, p.dloss, 4);
  EXPECT_TRUE(testing::close_to_reference(dlogits, r.dlogits, 2e-4, 0.0, "shifted_dlogits"));
}

TEST(CpuCrossEntropy, BackwardMatchesFiniteDifferences) {
  Problem p = make_problem(4, 11, 10);
  const auto weighted_loss = [&] {
    const Loss l = chunked_loss(p.logits, p.targets, 4);
    return testing::dot(l.loss, p.dloss);
  };
  const Loss l = chunked_loss(p.logits, p.targets, 4);
  const OwnedTensor dlogits = chunked_backward(p.logits, l.lse, p.targets, p.dloss, 4);
  EXPECT_TRUE(testing::close_to_reference(dlogits, testing::finite_difference(p.logits, weighted_loss, 1e-2f), 3e-4,
                                          0.0, "dlogits_vs_fd"));
}

}  // namespace
}  // namespace plm
