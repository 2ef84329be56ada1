// Vision helpers on CUDA: adaptive average pooling over a square token grid (torch adaptive_avg_pool2d
// windows, f32 sums rounded once) and its gradient, and im2col for the patch-embedding conv. One thread
// per output element; the backward gathers (no atomics), so it is deterministic.
#include "core/kernels/backends.h"
#include "core/kernels/cuda/cuda_common.cuh"

namespace plm::cuda {
namespace {

// Output index i of o along one axis averages input indices [window_start, window_end) of g.
__device__ int64_t window_start(int64_t i, int64_t g, int64_t o) { return i * g / o; }
__device__ int64_t window_end(int64_t i, int64_t g, int64_t o) { return ((i + 1) * g + o - 1) / o; }

// Index = (n, i, j, c) over out (N, o*o, C); x: (N, g*g, C).
template <typename T>
struct AdaptivePoolForward {
  T* out;
  const T* x;
  int64_t grid, out_grid, channels;
  __device__ void operator()(int64_t index) const {
    const int64_t c = index % channels;
    const int64_t j = (index / channels) % out_grid;
    const int64_t i = (index / (channels * out_grid)) % out_grid;
    const int64_t n = index / (channels * out_grid * out_grid);
    const int64_t row_start = window_start(i, grid, out_grid), row_end = window_end(i, grid, out_grid);
    const int64_t col_start = window_start(j, grid, out_grid), col_end = window_end(j, grid, out_grid);
    const T* image = x + n * grid * grid * channels;
    float sum = 0.0f;
    for (int64_t r = row_start; r < row_end; ++r) {
      for (int64_t q = col_start; q < col_end; ++q) sum += to_float(image[(r * grid + q) * channels + c]);
    }
    out[index] = from_float<T>(sum / static_cast<float>((row_end - row_start) * (col_end - col_start)));
  }
};

// Index = (n, r, q, c) over dx (N, g*g, C): the sum of dout / window size over the output windows that
// contain (r, q). Along an axis those are i in [r*o/g, ceil((r+1)*o/g)), each checked against its window.
template <typename T>
struct AdaptivePoolBackward {
  T* dx;
  const T* dout;
  int64_t grid, out_grid, channels;
  __device__ void operator()(int64_t index) const {
    const int64_t c = index % channels;
    const int64_t q = (index / channels) % grid;
    const int64_t r = (index / (channels * grid)) % grid;
    const int64_t n = index / (channels * grid * grid);
    const T* image = dout + n * out_grid * out_grid * channels;
    const int64_t i_end = std::min(out_grid, ((r + 1) * out_grid + grid - 1) / grid);
    const int64_t j_end = std::min(out_grid, ((q + 1) * out_grid + grid - 1) / grid);
    float sum = 0.0f;
    for (int64_t i = r * out_grid / grid; i < i_end; ++i) {
      const int64_t row_start = window_start(i, grid, out_grid), row_end = window_end(i, grid, out_grid);
      if (r < row_start || r >= row_end) continue;
      for (int64_t j = q * out_grid / grid; j < j_end; ++j) {
        const int64_t col_start = window_start(j, grid, out_grid), col_end = window_end(j, grid, out_grid);
        if (q < col_start || q >= col_end) continue;
        const float count = static_cast<float>((row_end - row_start) * (col_end - col_start));
        sum += to_float(image[(i * out_grid + j) * channels + c]) / count;
      }
    }
    dx[index] = from_float<T>(sum);
  }
};

// Index = (row, col) over patches (N * gh * gw, C * p * p); row = (n, py, px), col = (c, ky, kx);
// images (N, C, H, W).
template <typename T>
struct Im2colPatches {
  T* patches;
  const T* images;
  int64_t channels, height, width, patch;
  __device__ void operator()(int64_t index) const {
    const int64_t grid_w = width / patch;
    const int64_t grid_h = height / patch;
    const int64_t row_size = channels * patch * patch;
    const int64_t col = index % row_size;
    const int64_t row = index / row_size;
    const int64_t kx = col % patch;
    const int64_t ky = (col / patch) % patch;
    const int64_t c = col / (patch * patch);
    const int64_t px = row % grid_w;
    const int64_t py = (row / grid_w) % grid_h;
    const int64_t n = row / (grid_w * grid_h);
    patches[index] = images[((n * channels + c) * height + py * patch + ky) * width + px * patch + kx];
  }
};

// tokens (N, g*g, C) and pooled (N, o*o, C), same dtype.
void check_pool_args(const char* op, const Tensor& tokens, const Tensor& pooled, int grid, int out_grid) {
  check_cuda_tensors(op, {tokens, pooled});
  check_same_dtype(op, tokens, pooled);
  PLM_CHECK(grid > 0 && out_grid > 0 && tokens.rank() == 3 && pooled.rank() == 3 &&
            tokens.size(1) == int64_t{grid} * grid && pooled.size(1) == int64_t{out_grid} * out_grid &&
            tokens.size(0) == pooled.size(0) && tokens.size(2) == pooled.size(2))
      << op << ": wants x (N, " << grid << "*" << grid << ", C) and out (N, " << out_grid << "*" << out_grid
      << ", C); got " << tokens.describe() << ", " << pooled.describe();
}

}  // namespace

void adaptive_avg_pool2d_forward(Tensor out, Tensor x, int grid, int out_grid, Stream s) {
  check_pool_args("adaptive_avg_pool2d_forward", x, out, grid, out_grid);
  dispatch_float(x.dtype(), "adaptive_avg_pool2d_forward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    for_each_index(out.numel(), AdaptivePoolForward<T>{data_ptr<T>(out), data_ptr<const T>(x), grid, out_grid,
                                                       x.size(2)},
                   s);
  });
}

void adaptive_avg_pool2d_backward(Tensor dx, Tensor dout, int grid, int out_grid, Stream s) {
  check_pool_args("adaptive_avg_pool2d_backward", dx, dout, grid, out_grid);
  dispatch_float(dx.dtype(), "adaptive_avg_pool2d_backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    for_each_index(dx.numel(), AdaptivePoolBackward<T>{data_ptr<T>(dx), data_ptr<const T>(dout), grid, out_grid,
                                                       dx.size(2)},
                   s);
  });
}

void im2col_patches(Tensor patches, Tensor images, int patch_size, Stream s) {
  const char* op = "im2col_patches";
  check_cuda_tensors(op, {patches, images});
  check_same_dtype(op, patches, images);
  PLM_CHECK(patch_size > 0 && images.rank() == 4 && images.size(2) % patch_size == 0 &&
            images.size(3) % patch_size == 0)
      << op << ": wants images (N, C, H, W) with H and W multiples of " << patch_size << ", got "
      << images.describe();
  const int64_t num_patches = images.size(0) * (images.size(2) / patch_size) * (images.size(3) / patch_size);
  const int64_t patch_numel = images.size(1) * patch_size * patch_size;
  PLM_CHECK(patches.rank() == 2 && patches.size(0) == num_patches && patches.size(1) == patch_numel)
      << op << ": wants patches (" << num_patches << ", " << patch_numel << "), got " << patches.describe();
  dispatch_float(images.dtype(), op, [&](auto tag) {
    using T = typename decltype(tag)::type;
    for_each_index(patches.numel(),
                   Im2colPatches<T>{data_ptr<T>(patches), data_ptr<const T>(images), images.size(1), images.size(2),
                                    images.size(3), patch_size},
                   s);
  });
}

}  // namespace plm::cuda
