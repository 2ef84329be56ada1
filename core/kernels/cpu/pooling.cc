// CPU adaptive average pooling over a square token grid: x (N, g*g, C) tokens in row-major grid order ->
// out (N, o*o, C), torch adaptive_avg_pool2d windows (they overlap when o does not divide g). Backward
// gathers for each input token from every window holding it, so it writes dx (=) without races.
#include <algorithm>

#include "core/kernels/backends.h"
#include "core/kernels/cpu/checks.h"
#include "core/kernels/cpu/parallel.h"

namespace plm::cpu {

namespace {

// Grid rows (or columns) [begin, end) averaged into output row i: floor(i*g/o) .. ceil((i+1)*g/o).
struct Window {
  int64_t begin, end;
  bool contains(int64_t r) const { return begin <= r && r < end; }
};

// 1 / (number of tokens in the window rows x cols): the averaging weight.
float inverse_area(const Window& rows, const Window& cols) {
  return 1.0f / static_cast<float>((rows.end - rows.begin) * (cols.end - cols.begin));
}

Window window(int64_t i, int64_t grid, int64_t out_grid) {
  return {i * grid / out_grid, ((i + 1) * grid + out_grid - 1) / out_grid};
}

// Checks tokens (N, g*g, C) against pooled (N, o*o, C).
void check_pool(const char* op, const Tensor& tokens, const Tensor& pooled, int grid, int out_grid) {
  PLM_CHECK(grid > 0 && out_grid > 0) << op << ": grid " << grid << ", out_grid " << out_grid;
  check_rank(op, "tokens", tokens, 3);
  PLM_CHECK_EQ(tokens.size(1), int64_t{grid} * grid) << op << ": tokens " << tokens.describe() << " for grid " << grid;
  check_shape(op, "pooled", pooled, Shape{tokens.size(0), int64_t{out_grid} * out_grid, tokens.size(2)});
}

}  // namespace

void adaptive_avg_pool2d_forward(Tensor out, Tensor x, int grid, int out_grid, Stream) {
  check_tensor("adaptive_avg_pool2d_forward", "x", x, DType::kF32);
  check_tensor("adaptive_avg_pool2d_forward", "out", out, DType::kF32);
  check_pool("adaptive_avg_pool2d_forward", x, out, grid, out_grid);
  const int64_t channels = x.size(2);
  const int64_t num_cells = out.size(0) * out.size(1);  // (n, i, j) flattened
  const float* x_data = x.data_as<float>();
  float* out_data = out.data_as<float>();
#pragma omp parallel for if (x.numel() >= kMinParallelWork)
  for (int64_t cell = 0; cell < num_cells; ++cell) {
    const int64_t n = cell / (int64_t{out_grid} * out_grid);
    const Window rows = window(cell / out_grid % out_grid, grid, out_grid);
    const Window cols = window(cell % out_grid, grid, out_grid);
    float* dst = out_data + cell * channels;
    std::fill(dst, dst + channels, 0.0f);
    for (int64_t r = rows.begin; r < rows.end; ++r) {
      for (int64_t c = cols.begin; c < cols.end; ++c) {
        const float* src = x_data + ((n * grid + r) * grid + c) * channels;
        for (int64_t k = 0; k < channels; ++k) dst[k] += src[k];
      }
    }
    const float weight = inverse_area(rows, cols);
    for (int64_t k = 0; k < channels; ++k) dst[k] *= weight;
  }
}

void adaptive_avg_pool2d_backward(Tensor dx, Tensor dout, int grid, int out_grid, Stream) {
  check_tensor("adaptive_avg_pool2d_backward", "dx", dx, DType::kF32);
  check_tensor("adaptive_avg_pool2d_backward", "dout", dout, DType::kF32);
  check_pool("adaptive_avg_pool2d_backward", dx, dout, grid, out_grid);
  const int64_t channels = dx.size(2);
  const int64_t num_tokens = dx.size(0) * dx.size(1);  // (n, r, c) flattened
  const float* dout_data = dout.data_as<float>();
  float* dx_data = dx.data_as<float>();
#pragma omp parallel for if (dx.numel() >= kMinParallelWork)
  for (int64_t token = 0; token < num_tokens; ++token) {
    const int64_t n = token / (int64_t{grid} * grid);
    const int64_t r = token / grid % grid, c = token % grid;
    float* dst = dx_data + token * channels;
    std::fill(dst, dst + channels, 0.0f);
    for (int64_t i = 0; i < out_grid; ++i) {
      const Window rows = window(i, grid, out_grid);
      if (!rows.contains(r)) continue;
      for (int64_t j = 0; j < out_grid; ++j) {
        const Window cols = window(j, grid, out_grid);
        if (!cols.contains(c)) continue;
        const float* src = dout_data + ((n * out_grid + i) * out_grid + j) * channels;
        const float weight = inverse_area(rows, cols);
        for (int64_t k = 0; k < channels; ++k) dst[k] += src[k] * weight;
      }
    }
  }
}

}  // namespace plm::cpu
