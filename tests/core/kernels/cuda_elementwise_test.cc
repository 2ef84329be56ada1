// plm::cuda element-wise ops against the CPU oracle, f32 and bf16 (add, mul, divide, scale, mul_rowwise in place
// and not, fill), and cast between f32, bf16 and f16 in every direction, bit for bit, including ties,
// overflow to inf and subnormals.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
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

const Shape kShape{7, 129};

TEST(CudaElementwiseTest, ArithmeticMatchesCpu) {
  PLM_SKIP_WITHOUT_CUDA();
  for (const DType dtype : kCudaTestDTypes) {
    SCOPED_TRACE(dtype_name(dtype));
    auto a = random_pair(kShape, 1, dtype, -4.0f, 4.0f);
    auto b = random_pair(kShape, 2, dtype, -4.0f, 4.0f);
    auto w = random_pair({kShape[1]}, 3, dtype);
    OwnedTensor expected = cpu_output(kShape);
    OwnedTensor out = cuda_output(kShape, dtype);

    cpu::add(expected, a.host, b.host);
    cuda::add(out, a.device, b.device);
    EXPECT_TRUE(matches_cpu(out, expected, dtype, dtype_label("add", dtype)));

    cpu::mul(expected, a.host, b.host);
    cuda::mul(out, a.device, b.device);
    EXPECT_TRUE(matches_cpu(out, expected, dtype, dtype_label("mul", dtype)));

    auto divisor = random_pair(kShape, 4, dtype, 0.5f, 2.0f);
    cpu::divide(expected, a.host, divisor.host);
    cuda::divide(out, a.device, divisor.device);
    EXPECT_TRUE(matches_cpu(out, expected, dtype, dtype_label("divide", dtype)));

    cpu::scale(expected, a.host, -0.37f);
    cuda::scale(out, a.device, -0.37f);
    EXPECT_TRUE(matches_cpu(out, expected, dtype, dtype_label("scale", dtype)));

    cpu::mul_rowwise(expected, a.host, w.host);
    cuda::mul_rowwise(a.device, a.device, w.device);  // in place
    EXPECT_TRUE(matches_cpu(a.device, expected, dtype, dtype_label("mul_rowwise", dtype)));

    cuda::fill(out, 2.5f);
    for (const float value : testing::to_vector(out)) EXPECT_EQ(value, 2.5f);
  }
}

// Every float dtype, as the tensor the cast reads.
constexpr DType kCastDTypes[] = {DType::kF32, DType::kBF16, DType::kF16};

TEST(CudaElementwiseTest, CastMatchesCpuBitForBit) {
  PLM_SKIP_WITHOUT_CUDA();
  constexpr float kInf = std::numeric_limits<float>::infinity();
  // Ties for bf16 (1 + 2^-8) and f16 (1 + 2^-11), f16 overflow and subnormals, an f32 subnormal, and random values.
  std::vector<float> values = {0.0f,  -0.0f,   1.0f,    1.0f + 1.0f / 256, 1.0f + 1.0f / 2048, 65504.0f, 70000.0f,
                               -kInf, 1e-7f,   3e-39f,  -2.5f,             1e30f,              6.1e-5f,  -3.1e-6f};
  for (const float v : testing::to_vector(testing::random_tensor({100}, 4, -100.0f, 100.0f))) values.push_back(v);
  const Shape shape{static_cast<int64_t>(values.size())};
  OwnedTensor source_f32 = testing::tensor_from(shape, values);
  for (const DType from : kCastDTypes) {
    // The source is the values rounded to `from` on the host (CPU cast), then uploaded.
    OwnedTensor source(shape, from);
    cpu::cast(source, source_f32);
    OwnedTensor source_cuda = testing::to_cuda(source);
    for (const DType to : kCastDTypes) {
      SCOPED_TRACE(std::string(dtype_name(from)) + " -> " + std::string(dtype_name(to)));
      OwnedTensor expected(shape, to);
      cpu::cast(expected, source);
      OwnedTensor out = cuda_output(shape, to);
      cuda::cast(out, source_cuda);
      EXPECT_TRUE(testing::same_values(out, expected));
    }
  }
}

}  // namespace
}  // namespace plm
