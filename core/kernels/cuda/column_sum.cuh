// Deterministic column sums, out (D) (+)= sum over rows n of value(n, d), for parameter gradients (norm
// weights, biases, sum_rows) that must not depend on the order of float atomics. Pass 1: blocks of
// kColumnTile columns x kRowsPerChunk rows write f32 partials; pass 2 adds them in chunk order. The chunking
// depends only on the shape, so results repeat bit for bit. The scratch is freed on return: the caching
// allocator reuses it in host order, safe because plm orders a rank's kernels on one stream.
#pragma once

#include <cstdint>

#include "core/buffer.h"
#include "core/kernels/cuda/cuda_common.cuh"

namespace plm::cuda {

inline constexpr int kColumnTile = 32;        // columns per block: a warp reads 32 consecutive elements
inline constexpr int kColumnRowLanes = 8;     // warps per block, each striding over the chunk's rows
inline constexpr int64_t kRowsPerChunk = 128;  // rows per partial sum

// partials (num_chunks, num_cols); block (kColumnTile, kColumnRowLanes), grid (num_chunks, num_tiles).
template <typename F>
__global__ void column_partial_sums_kernel(float* partials, F value, int64_t num_rows, int64_t num_cols) {
  __shared__ float lane_sums[kColumnRowLanes][kColumnTile];
  const int64_t col = int64_t{blockIdx.y} * kColumnTile + threadIdx.x;
  const int64_t chunk = blockIdx.x;
  const int64_t row_end = std::min(num_rows, (chunk + 1) * kRowsPerChunk);
  float sum = 0.0f;
  if (col < num_cols) {
    for (int64_t row = chunk * kRowsPerChunk + threadIdx.y; row < row_end; row += kColumnRowLanes) {
      sum += value(row, col);
    }
  }
  lane_sums[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && col < num_cols) {
    float total = 0.0f;
    for (int lane = 0; lane < kColumnRowLanes; ++lane) total += lane_sums[lane][threadIdx.x];
    partials[chunk * num_cols + col] = total;
  }
}

template <typename T>
struct ColumnFinish {
  T* out;
  const float* partials;  // (num_chunks, num_cols)
  int64_t num_chunks, num_cols;
  bool accumulate;
  __device__ void operator()(int64_t col) const {
    float total = 0.0f;
    for (int64_t chunk = 0; chunk < num_chunks; ++chunk) total += partials[chunk * num_cols + col];
    out[col] = from_float<T>(accumulate ? to_float(out[col]) + total : total);
  }
};

// out: num_cols elements of T on `device`; value: a functor `__device__ float operator()(int64_t row,
// int64_t col) const`. accumulate: out += sums, else out = sums.
template <typename T, typename F>
void column_sum(const char* op, T* out, const F& value, int64_t num_rows, int64_t num_cols, bool accumulate,
                Device device, Stream stream) {
  if (num_cols == 0) return;
  const int64_t num_chunks = ceil_div(num_rows, kRowsPerChunk);
  const int64_t num_tiles = ceil_div(num_cols, kColumnTile);
  PLM_CHECK(num_tiles <= 65535 && num_chunks <= std::numeric_limits<int32_t>::max())
      << op << ": column sum of (" << num_rows << ", " << num_cols << ") exceeds the grid";
  Buffer partials(static_cast<size_t>(num_chunks * num_cols) * sizeof(float), device);
  float* partials_data = static_cast<float*>(partials.data());
  if (num_chunks > 0) {
    const dim3 grid(static_cast<unsigned>(num_chunks), static_cast<unsigned>(num_tiles));
    const dim3 block(kColumnTile, kColumnRowLanes);
    column_partial_sums_kernel<<<grid, block, 0, as_cuda_stream(stream)>>>(partials_data, value, num_rows,
                                                                            num_cols);
    PLM_CUDA_CHECK_LAUNCH();
  }
  for_each_index(num_cols, ColumnFinish<T>{out, partials_data, num_chunks, num_cols, accumulate}, stream);
}

}  // namespace plm::cuda
