// plm::cpu::im2col_patches: rows in row-major patch order, each flattened (c, ky, kx); im2col followed by
// a matmul with the (D, C*p*p) weight equals a stride-p convolution computed directly.
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

struct ImageCase {
  int64_t num_images, channels, height, width;
  int patch_size;
};

// The last case exceeds kMinParallelWork, so the threaded path runs too.
const ImageCase kCases[] = {{1, 1, 1, 1, 1}, {2, 3, 6, 9, 3}, {1, 3, 4, 4, 2}, {3, 2, 14, 7, 7}, {2, 3, 112, 98, 14}};

TEST(CpuIm2colTest, PatchRowsFollowTheDocumentedLayout) {
  for (const ImageCase& ic : kCases) {
    const int64_t p = ic.patch_size, grid_h = ic.height / p, grid_w = ic.width / p;
    OwnedTensor images = random_tensor({ic.num_images, ic.channels, ic.height, ic.width}, 1);
    OwnedTensor patches({ic.num_images * grid_h * grid_w, ic.channels * p * p}, DType::kF32);
    cpu::im2col_patches(patches, images, ic.patch_size);
    const std::vector<double> src = to_doubles(images);
    std::vector<double> expected;
    for (int64_t n = 0; n < ic.num_images; ++n) {
      for (int64_t py = 0; py < grid_h; ++py) {
        for (int64_t px = 0; px < grid_w; ++px) {
          for (int64_t c = 0; c < ic.channels; ++c) {
            for (int64_t ky = 0; ky < p; ++ky) {
              for (int64_t kx = 0; kx < p; ++kx) {
                expected.push_back(src[((n * ic.channels + c) * ic.height + py * p + ky) * ic.width + px * p + kx]);
              }
            }
          }
        }
      }
    }
    EXPECT_TRUE(close_to_reference(patches, expected, 0.0, 0.0, "err_p" + std::to_string(p)));
  }
}

TEST(CpuIm2colTest, MatmulWithConvWeightIsTheConvolution) {
  const int64_t channels = 3, size = 6, p = 2, dim = 5, grid = size / p;
  OwnedTensor images = random_tensor({2, channels, size, size}, 2);
  OwnedTensor weight = random_tensor({dim, channels, p, p}, 3);  // conv weight (D, C, p, p)
  OwnedTensor patches({2 * grid * grid, channels * p * p}, DType::kF32);
  OwnedTensor embedded({2 * grid * grid, dim}, DType::kF32);
  cpu::im2col_patches(patches, images, p);
  MatmulOptions linear;
  linear.trans_b = true;  // the nn.Linear layout (D, C*p*p)
  cpu::matmul(embedded, patches, weight.view().reshape({dim, channels * p * p}), linear);
  const std::vector<double> src = to_doubles(images), w = to_doubles(weight);
  std::vector<double> conv;
  for (int64_t n = 0; n < 2; ++n) {
    for (int64_t py = 0; py < grid; ++py) {
      for (int64_t px = 0; px < grid; ++px) {
        for (int64_t d = 0; d < dim; ++d) {
          double acc = 0.0;
          for (int64_t c = 0; c < channels; ++c) {
            for (int64_t ky = 0; ky < p; ++ky) {
              for (int64_t kx = 0; kx < p; ++kx) {
                acc += w[((d * channels + c) * p + ky) * p + kx] *
                       src[((n * channels + c) * size + py * p + ky) * size + px * p + kx];
              }
            }
          }
          conv.push_back(acc);
        }
      }
    }
  }
  EXPECT_TRUE(close_to_reference(embedded, conv, 1e-5, 1e-5, "err_conv"));
}

}  // namespace
}  // namespace plm
