// Norm backward with frozen weights (dw / db undefined) gives the same dx as with them.
#include <gtest/gtest.h>

#include "core/kernels/backends.h"
#include "tests/core/test_util.h"

namespace plm {
namespace {

TEST(NormBackward, FrozenWeightsGiveTheSameDx) {
  const int64_t n = 5, d = 7;
  OwnedTensor x = testing::random_tensor({n, d}, 1), w = testing::random_tensor({d}, 2);
  OwnedTensor b = testing::random_tensor({d}, 3), dy = testing::random_tensor({n, d}, 4);
  OwnedTensor y({n, d}, DType::kF32), mean({n}, DType::kF32), rstd({n}, DType::kF32);
  OwnedTensor dx({n, d}, DType::kF32), dx_frozen({n, d}, DType::kF32);
  OwnedTensor dw({d}, DType::kF32), db({d}, DType::kF32);

  cpu::rmsnorm_forward(y, rstd, x, w, 1e-5f);
  cpu::fill(dw, 0.0f);
  cpu::rmsnorm_backward(dx, dw, dy, x, w, rstd);
  cpu::rmsnorm_backward(dx_frozen, Tensor(), dy, x, w, rstd);
  EXPECT_EQ(testing::max_abs_diff(dx, dx_frozen), 0.0f);

  cpu::layernorm_forward(y, mean, rstd, x, w, b, 1e-5f);
  cpu::fill(dw, 0.0f);
  cpu::fill(db, 0.0f);
  cpu::layernorm_backward(dx, dw, db, dy, x, w, mean, rstd);
  cpu::layernorm_backward(dx_frozen, Tensor(), Tensor(), dy, x, w, mean, rstd);
  EXPECT_EQ(testing::max_abs_diff(dx, dx_frozen), 0.0f);
}

}  // namespace
}  // namespace plm
