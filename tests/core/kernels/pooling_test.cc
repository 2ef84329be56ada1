// plm::cpu::adaptive_avg_pool2d_forward/backward on token-major grids (N, g*g, C): 2x2 blocks for g = 4,
// o = 2, torch's overlapping windows for g = 7, o = 3 (rows 0-2, 2-4, 4-6), checked against a double
// reference with the windows written out, the adjoint identity and finite differences.
#include <algorithm>
#include <string>
#include <vector>

#include "core/kernels/backends.h"
#include "tests/core/kernels/reference_check.h"
#include "tests/core/test_util.h"

namespace plm {
namespace {

using testing::close_to_reference;
using testing::random_tensor;
using testing::to_doubles;

struct Span {
  int begin, end;  // [begin, end) grid rows or columns
};

// out[n, i*o + j, c] = mean of x over rows windows[i] x columns windows[j], in double.
std::vector<double> reference_pool(Tensor x, int grid, const std::vector<Span>& windows) {
  const int64_t batch = x.size(0), channels = x.size(2);
  const int64_t out_grid = static_cast<int64_t>(windows.size());
  const std::vector<double> xv = to_doubles(x);
  std::vector<double> out(static_cast<size_t>(batch * out_grid * out_grid * channels));
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t i = 0; i < out_grid; ++i) {
      for (int64_t j = 0; j < out_grid; ++j) {
        const Span rows = windows[i], cols = windows[j];
        const double count = (rows.end - rows.begin) * (cols.end - cols.begin);
        for (int64_t c = 0; c < channels; ++c) {
          double sum = 0.0;
          for (int r = rows.begin; r < rows.end; ++r) {
            for (int q = cols.begin; q < cols.end; ++q) sum += xv[((n * grid + r) * grid + q) * channels + c];
          }
          out[((n * out_grid + i) * out_grid + j) * channels + c] = sum / count;
        }
      }
    }
  }
  return out;
}

struct PoolCase {
  int grid;
  std::vector<Span> windows;  // torch adaptive_avg_pool2d windows, written out by hand
};

const PoolCase kCases[] = {
    {4, {{0, 2}, {2, 4}}},
    {7, {{0, 3}, {2, 5}, {4, 7}}},
    {6, {{0, 2}, {2, 4}, {4, 6}}},
    {5, {{0, 5}}},
    {3, {{0, 1}, {1, 2}, {2, 3}}},
};

// PLM's own case, large enough (2 x 1024 x 17 elements) for the threaded path.
const PoolCase kPlmCase = {32, {{0, 2}, {2, 4}, {4, 6}, {6, 8}, {8, 10}, {10, 12}, {12, 14}, {14, 16},
                                {16, 18}, {18, 20}, {20, 22}, {22, 24}, {24, 26}, {26, 28}, {28, 30}, {30, 32}}};

TEST(CpuAdaptiveAvgPoolTest, ForwardMatchesWindowsWrittenOut) {
  std::vector<PoolCase> cases(std::begin(kCases), std::end(kCases));
  cases.push_back(kPlmCase);
  for (const PoolCase& pc : cases) {
    const int out_grid = static_cast<int>(pc.windows.size());
    const std::string label = "err_g" + std::to_string(pc.grid) + "_o" + std::to_string(out_grid);
    OwnedTensor x = random_tensor({2, pc.grid * pc.grid, 17}, 1);
    OwnedTensor out({2, out_grid * out_grid, 17}, DType::kF32);
    cpu::adaptive_avg_pool2d_forward(out, x, pc.grid, out_grid);
    EXPECT_TRUE(close_to_reference(out, reference_pool(x, pc.grid, pc.windows), 1e-6, 1e-6, label)) << label;
  }
}

// Backward is the adjoint of forward: <pool(x), g> == <x, pool_backward(g)> for every x, so dx equals
// the transpose of the forward matrix applied to g, computed here one basis vector at a time.
TEST(CpuAdaptiveAvgPoolTest, BackwardIsTheAdjointOfForward) {
  for (const PoolCase& pc : kCases) {
    const int out_grid = static_cast<int>(pc.windows.size());
    const int64_t num_tokens = pc.grid * pc.grid, channels = 3;
    const std::string label = "err_dx_g" + std::to_string(pc.grid) + "_o" + std::to_string(out_grid);
    OwnedTensor dout = random_tensor({1, out_grid * out_grid, channels}, 2);
    OwnedTensor dx = random_tensor({1, num_tokens, channels}, 3);  // stale values must be overwritten
    cpu::adaptive_avg_pool2d_backward(dx, dout, pc.grid, out_grid);
    const std::vector<double> g = to_doubles(dout);
    std::vector<double> expected(static_cast<size_t>(num_tokens * channels));
    OwnedTensor basis({1, num_tokens, channels}, DType::kF32);
    for (size_t e = 0; e < expected.size(); ++e) {
      std::fill_n(basis.data_as<float>(), basis.numel(), 0.0f);
      basis.data_as<float>()[e] = 1.0f;
      const std::vector<double> pooled = reference_pool(basis, pc.grid, pc.windows);
      for (size_t k = 0; k < g.size(); ++k) expected[e] += pooled[k] * g[k];
    }
    EXPECT_TRUE(close_to_reference(dx, expected, 1e-6, 1e-6, label)) << label;
  }
}

TEST(CpuAdaptiveAvgPoolTest, BackwardMatchesFiniteDifferences) {
  OwnedTensor x = random_tensor({2, 49, 3}, 4);
  OwnedTensor g = random_tensor({2, 9, 3}, 5);
  OwnedTensor out({2, 9, 3}, DType::kF32), dx({2, 49, 3}, DType::kF32);
  const auto loss = [&] {
    cpu::adaptive_avg_pool2d_forward(out, x, 7, 3);
    return testing::dot(out, g);
  };
  const std::vector<double> numeric = testing::finite_difference(x, loss, 1e-2f);
  cpu::adaptive_avg_pool2d_backward(dx, g, 7, 3);
  EXPECT_TRUE(close_to_reference(dx, numeric, 1e-4, 1e-3, "err_dx_vs_fd"));
}

}  // namespace
}  // namespace plm
