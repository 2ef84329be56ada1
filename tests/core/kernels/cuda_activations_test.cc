// plm::cuda SwiGLU and exact GELU against the CPU oracle, f32 and bf16, forward and backward, with the
// backward writing in place over its inputs.
#include <gtest/gtest.h>

#include <string>

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

TEST(CudaActivationsTest, SwigluMatchesCpu) {
  PLM_SKIP_WITHOUT_CUDA();
  for (const DType dtype : kCudaTestDTypes) {
    SCOPED_TRACE(dtype_name(dtype));
    auto gate = random_pair(kShape, 1, dtype, -6.0f, 6.0f);
    auto up = random_pair(kShape, 2, dtype, -2.0f, 2.0f);
    auto dout = random_pair(kShape, 3, dtype);
    OwnedTensor out_expected = cpu_output(kShape);
    OwnedTensor dgate_expected = cpu_output(kShape), dup_expected = cpu_output(kShape);
    cpu::swiglu_forward(out_expected, gate.host, up.host);
    cpu::swiglu_backward(dgate_expected, dup_expected, dout.host, gate.host, up.host);
    OwnedTensor out = cuda_output(kShape, dtype);
    cuda::swiglu_forward(out, gate.device, up.device);
    EXPECT_TRUE(matches_cpu(out, out_expected, dtype, dtype_label("out", dtype)));
    // In place: dgate over gate, dup over up.
    cuda::swiglu_backward(gate.device, up.device, dout.device, gate.device, up.device);
    EXPECT_TRUE(matches_cpu(gate.device, dgate_expected, dtype, dtype_label("dgate", dtype)));
    EXPECT_TRUE(matches_cpu(up.device, dup_expected, dtype, dtype_label("dup", dtype)));
  }
}

TEST(CudaActivationsTest, GeluMatchesCpu) {
  PLM_SKIP_WITHOUT_CUDA();
  for (const DType dtype : kCudaTestDTypes) {
    SCOPED_TRACE(dtype_name(dtype));
    auto x = random_pair(kShape, 4, dtype, -6.0f, 6.0f);
    auto dy = random_pair(kShape, 5, dtype);
    OwnedTensor y_expected = cpu_output(kShape), dx_expected = cpu_output(kShape);
    cpu::gelu_forward(y_expected, x.host);
    cpu::gelu_backward(dx_expected, dy.host, x.host);
    OwnedTensor y = cuda_output(kShape, dtype);
    cuda::gelu_forward(y, x.device);
    EXPECT_TRUE(matches_cpu(y, y_expected, dtype, dtype_label("y", dtype)));
    cuda::gelu_backward(dy.device, dy.device, x.device);  // in place over dy
    EXPECT_TRUE(matches_cpu(dy.device, dx_expected, dtype, dtype_label("dx", dtype)));
  }
}

}  // namespace
}  // namespace plm
