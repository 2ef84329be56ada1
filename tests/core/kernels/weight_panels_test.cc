// Weight panels (gemm_bf16_packed.h): packing puts every pair word where the tiles read it, and the GEMM on
// panels equals gemm_bf16_packed bit for bit at every M (the same tiles and summation order, from one row on),
// against K blocks, odd pair counts, alpha and beta. Also through matmul (MatmulOptions::b_panels) with a batch,
// and the embedding lookup of a tied table in panels.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "core/kernels/cpu/gemm_bf16_packed.h"
#include "core/kernels/ops.h"
#include "tests/core/test_util.h"

namespace plm {
namespace {

using testing::random_tensor;
using testing::tensor_from;
using testing::to_vector;

// A copy of w in weight panels.
OwnedTensor panels_of(const OwnedTensor& w) {
  OwnedTensor panels(w.shape(), DType::kBF16);
  std::memcpy(panels.data_as<bf16>(), w.data_as<bf16>(), static_cast<size_t>(w.numel()) * sizeof(bf16));
  cpu::pack_weight_panels(panels.data_as<bf16>(), w.size(0), w.size(1));
  return panels;
}

void require_avx512_bf16() {
  if (!cpu::cpu_has_avx512_bf16()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
}

TEST(WeightPanels, PackingPutsEveryPairInItsPanelWord) {
  const int64_t n = 64, k = 10;
  const OwnedTensor w = random_tensor({n, k}, 1, -1.0f, 1.0f, DType::kBF16);
  OwnedTensor packed = panels_of(w);
  // Word [panel][p][j] holds elements (2p, 2p + 1) of row 32 panel + j.
  const bf16* src = w.data_as<bf16>();
  const bf16* dst = packed.data_as<bf16>();
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t p = 0; p < k / 2; ++p) {
      const int64_t word = (r / 32) * 32 * (k / 2) + p * 32 + r % 32;
      ASSERT_EQ(dst[2 * word].bits, src[r * k + 2 * p].bits) << "row " << r << " pair " << p;
      ASSERT_EQ(dst[2 * word + 1].bits, src[r * k + 2 * p + 1].bits) << "row " << r << " pair " << p;
    }
  }
  EXPECT_FALSE(cpu::weight_panels_fit(48, 10));
  EXPECT_FALSE(cpu::weight_panels_fit(64, 9));
}

TEST(WeightPanels, GemmEqualsThePackedGemmAtEveryRowCount) {
  require_avx512_bf16();
  int cases = 0;
  for (const int64_t m : {1, 2, 13, 14, 15, 28, 45}) {
    for (const int64_t n : {32, 96, 288}) {
      for (const int64_t k : {2, 34, 100, 2050, 4100}) {  // 1025 and 2050 pairs: past one K block of 1024
        const float alpha = cases % 2 == 0 ? 1.0f : 0.5f, beta = cases % 3 == 0 ? 0.0f : -1.5f;
        const OwnedTensor a = random_tensor({m, k}, 10 + cases);
        const OwnedTensor w = random_tensor({n, k}, 20 + cases, -1.0f, 1.0f, DType::kBF16);
        const std::vector<float> c0 = to_vector(random_tensor({m, n}, 30 + cases));
        ++cases;
        OwnedTensor expected = tensor_from({m, n}, c0), actual = tensor_from({m, n}, c0);
        cpu::gemm_bf16_packed({.a = a.data_as<float>(), .w = w.data_as<bf16>(), .c = expected.data_as<float>(),
                               .m = m, .n = n, .k = k, .alpha = alpha, .beta = beta});
        const OwnedTensor panels = panels_of(w);
        cpu::gemm_bf16_prepacked({.a = a.data_as<float>(), .w = panels.data_as<bf16>(), .c = actual.data_as<float>(),
                                  .m = m, .n = n, .k = k, .alpha = alpha, .beta = beta});
        const std::vector<float> want = to_vector(expected), got = to_vector(actual);
        for (size_t i = 0; i < got.size(); ++i) {
          ASSERT_EQ(got[i], want[i]) << "m " << m << " n " << n << " k " << k << " element " << i;
        }
      }
    }
  }
}

TEST(WeightPanels, MatmulReadsPanelsWithABatchAndABias) {
  require_avx512_bf16();
  const int64_t batch = 3, m = 5, n = 64, k = 48;
  const OwnedTensor a = random_tensor({batch, m, k}, 7);
  const OwnedTensor w = random_tensor({n, k}, 8, -1.0f, 1.0f, DType::kBF16);
  const OwnedTensor bias = random_tensor({n}, 9);
  OwnedTensor expected({batch, m, n}, DType::kF32), actual({batch, m, n}, DType::kF32);
  // Row by row on the plain layout (the dot tiles: another summation order, so near, not equal).
  for (int64_t row = 0; row < batch * m; ++row) {
    matmul(expected.view().reshape({batch * m, n}).slice(0, row, row + 1),
           a.view().reshape({batch * m, k}).slice(0, row, row + 1), w,
           {.trans_b = true, .bias = bias, .compute = DType::kBF16});
  }
  const OwnedTensor panels = panels_of(w);
  matmul(actual, a, panels, {.trans_b = true, .bias = bias, .compute = DType::kBF16, .b_panels = true});
  const std::vector<float> want = to_vector(expected), got = to_vector(actual);
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], 1e-5f * (1.0f + std::abs(want[i]))) << "element " << i;
  }
}

TEST(WeightPanels, EmbeddingGathersTheSameRowsFromPanels) {
  const int64_t vocab = 96, dim = 12, vocab_start = 10;
  const OwnedTensor table = random_tensor({vocab, dim}, 40, -1.0f, 1.0f, DType::kBF16);
  const OwnedTensor panels = panels_of(table);
  const OwnedTensor ids = tensor_from({6}, std::vector<int32_t>{10, 105, 47, 9, 106, 77});  // two outside the shard
  OwnedTensor expected({6, dim}, DType::kF32), actual({6, dim}, DType::kF32);
  embedding_forward(expected, ids, table, vocab_start);
  cpu::embedding_forward_weight_panels(actual, ids, panels, vocab_start);
  EXPECT_EQ(to_vector(actual), to_vector(expected));
}

}  // namespace
}  // namespace plm
