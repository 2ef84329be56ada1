// plm::cuda::dropout_forward against the CPU oracle, f32 and bf16: the same mask bit for bit (integer
// hashing) and the same kept values (one f32 product, rounded once), in place as well.
#include <gtest/gtest.h>

#include <vector>

#include "core/kernels/backends.h"
#include "tests/core/kernels/cuda_test_util.h"
#include "tests/core/test_util.h"

namespace plm {
namespace {

using testing::cpu_output;
using testing::cuda_output;
using testing::dtype_label;
using testing::kCudaTestDTypes;
using testing::matches_cpu;
using testing::random_pair;

TEST(CudaDropoutTest, MatchesCpu) {
  PLM_SKIP_WITHOUT_CUDA();
  const int64_t rows = 37, dim = 301;
  OwnedTensor keys({rows}, DType::kI64);
  for (int64_t r = 0; r < rows; ++r) keys.data_as<int64_t>()[r] = -1234567 + r * 104729;
  const OwnedTensor keys_cuda = testing::to_cuda(keys);
  for (const DType dtype : kCudaTestDTypes) {
    SCOPED_TRACE(dtype_name(dtype));
    auto x = random_pair({rows, dim}, 1, dtype, 0.5f, 1.5f);
    OwnedTensor expected = cpu_output({rows, dim});
    OwnedTensor out = cuda_output({rows, dim}, dtype);
    cpu::dropout_forward(expected, x.host, keys, 77, 0.4f);
    cuda::dropout_forward(out, x.device, keys_cuda, 77, 0.4f);
    EXPECT_TRUE(matches_cpu(out, expected, dtype, dtype_label("dropout", dtype)));
    // The masks agree exactly: zero in the same places.
    const std::vector<float> got = testing::to_vector(out), want = testing::to_vector(expected);
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i] == 0.0f, want[i] == 0.0f) << i;
    cuda::dropout_forward(x.device, x.device, keys_cuda, 77, 0.4f);  // in place
    EXPECT_TRUE(matches_cpu(x.device, expected, dtype, dtype_label("dropout_in_place", dtype)));
  }
}

}  // namespace
}  // namespace plm
