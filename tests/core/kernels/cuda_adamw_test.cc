// plm::cuda::adamw_step against the CPU oracle over three steps: f32 grads with an f32 working copy, bf16
// grads with a bf16 working copy, and no working copy; weight decay and grad scaling on.
#include <gtest/gtest.h>

#include <string>

#include "core/kernels/backends.h"
#include "tests/core/kernels/cuda_test_util.h"
#include "tests/core/test_util.h"

namespace plm {
namespace {

using testing::cuda_output;
using testing::dtype_label;
using testing::kCudaTestDTypes;
using testing::matches_cpu;
using testing::random_pair;
using testing::to_cuda;

constexpr int64_t kSize = 1001;

TEST(CudaAdamWTest, StepsMatchCpu) {
  PLM_SKIP_WITHOUT_CUDA();
  for (const DType dtype : kCudaTestDTypes) {
    for (const bool with_param_out : {true, false}) {
      const std::string label = dtype_label(with_param_out ? "param_out" : "no_param_out", dtype);
      SCOPED_TRACE(label);
      auto master = random_pair({kSize}, 1, DType::kF32);
      auto m = random_pair({kSize}, 2, DType::kF32, -0.1f, 0.1f);
      auto v = random_pair({kSize}, 3, DType::kF32, 0.0f, 0.01f);
      OwnedTensor param_cpu(Shape{kSize}, DType::kF32);
      OwnedTensor param = cuda_output({kSize}, dtype);
      AdamWOptions options;
      options.lr = 1e-3f;
      options.weight_decay = 0.1f;
      options.grad_scale = 0.5f;
      for (int64_t step = 1; step <= 3; ++step) {
        options.step = step;
        auto grad = random_pair({kSize}, 10 + static_cast<uint64_t>(step), dtype);
        cpu::adamw_step(master.host, m.host, v.host, grad.host, with_param_out ? Tensor(param_cpu) : Tensor(), options);
        cuda::adamw_step(master.device, m.device, v.device, grad.device, with_param_out ? Tensor(param) : Tensor(),
                         options);
      }
      // The optimizer state is f32 from identical grads: f32 tolerance whatever the grad dtype.
      EXPECT_TRUE(matches_cpu(master.device, master.host, DType::kF32, "master_" + label));
      EXPECT_TRUE(matches_cpu(m.device, m.host, DType::kF32, "m_" + label));
      EXPECT_TRUE(matches_cpu(v.device, v.host, DType::kF32, "v_" + label));
      if (with_param_out) {
        EXPECT_TRUE(matches_cpu(param, param_cpu, dtype, "param_" + label));
      }
    }
  }
}

}  // namespace
}  // namespace plm
