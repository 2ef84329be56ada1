// CPU im2col for non-overlapping square patches (stride = kernel = p): images (N, C, H, W) ->
// patches (N * H/p * W/p, C*p*p), each row flattened (c, ky, kx) like the conv weight (D, C, p, p).
#include <cstring>

#include "core/kernels/backends.h"
#include "core/kernels/cpu/checks.h"
#include "core/kernels/cpu/parallel.h"

namespace plm::cpu {

void im2col_patches(Tensor patches, Tensor images, int patch_size, Stream) {
  check_tensor("im2col_patches", "images", images, DType::kF32);
  check_rank("im2col_patches", "images", images, 4);
  const int64_t num_images = images.size(0), channels = images.size(1);
  const int64_t height = images.size(2), width = images.size(3), p = patch_size;
  PLM_CHECK(p > 0 && height % p == 0 && width % p == 0)
      << "im2col_patches: images " << images.describe() << " do not tile into " << p << "x" << p << " patches";
  const int64_t grid_h = height / p, grid_w = width / p;
  check_f32("im2col_patches", "patches", patches, Shape{num_images * grid_h * grid_w, channels * p * p});
  const float* src = images.data_as<float>();
  float* dst = patches.data_as<float>();
  const int64_t num_patches = patches.size(0);
#pragma omp parallel for if (patches.numel() >= kMinParallelWork)
  for (int64_t patch = 0; patch < num_patches; ++patch) {
    const int64_t n = patch / (grid_h * grid_w);
    const int64_t y0 = patch / grid_w % grid_h * p, x0 = patch % grid_w * p;
    float* row = dst + patch * channels * p * p;
    for (int64_t c = 0; c < channels; ++c) {
      for (int64_t ky = 0; ky < p; ++ky) {
        const float* line = src + ((n * channels + c) * height + y0 + ky) * width + x0;
        std::memcpy(row + (c * p + ky) * p, line, static_cast<size_t>(p) * sizeof(float));
      }
    }
  }
}

}  // namespace plm::cpu
