// CPU AdamW against a double-precision transcription of torch.optim.AdamW (decay first, then the
// bias-corrected Adam update) over three steps, with f32 and bf16 gradients and working copies.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/kernels/backends.h"
#include "tests/core/kernels/reference_check.h"
#include "tests/core/test_util.h"

namespace plm {
namespace {

struct State {
  std::vector<double> master, m, v;
};

// One torch.optim.AdamW step in double (grads already as the kernel reads them).
void reference_step(State& s, const std::vector<float>& grad, const AdamWOptions& o) {
  const double b1 = o.beta1, b2 = o.beta2;
  const double bias1 = 1.0 - std::pow(b1, static_cast<double>(o.step));
  const double bias2 = 1.0 - std::pow(b2, static_cast<double>(o.step));
  for (size_t i = 0; i < s.master.size(); ++i) {
    const double g = static_cast<double>(grad[i]) * o.grad_scale;
    s.master[i] *= 1.0 - static_cast<double>(o.lr) * o.weight_decay;
    s.m[i] = b1 * s.m[i] + (1.0 - b1) * g;
    s.v[i] = b2 * s.v[i] + (1.0 - b2) * g * g;
    s.master[i] -= o.lr / bias1 * s.m[i] / (std::sqrt(s.v[i]) / std::sqrt(bias2) + o.eps);
  }
}

void run_three_steps(DType grad_dtype, DType param_dtype) {
  const int64_t n = 37;
  OwnedTensor master = testing::random_tensor({n}, 1), m({n}, DType::kF32), v({n}, DType::kF32);
  OwnedTensor param_out({n}, param_dtype);
  for (int64_t i = 0; i < n; ++i) m.data_as<float>()[i] = v.data_as<float>()[i] = 0.0f;
  const std::vector<float> start = testing::to_vector(master);
  State s{{start.begin(), start.end()}, std::vector<double>(n, 0.0), std::vector<double>(n, 0.0)};
  AdamWOptions o;
  o.lr = 1e-2f;
  o.weight_decay = 0.1f;
  o.grad_scale = 0.5f;
  for (int64_t step = 1; step <= 3; ++step) {
    o.step = step;
    // Gradients of mixed magnitude, some tiny, so eps matters for a few elements.
    OwnedTensor grad = testing::random_tensor({n}, 10 + step, -2.0f, 2.0f, grad_dtype);
    if (grad_dtype == DType::kF32) grad.data_as<float>()[0] = 1e-9f;
    reference_step(s, testing::to_vector(grad), o);
    cpu::adamw_step(master, m, v, grad, param_out, o);
  }
  const std::string tag = std::string(grad_dtype == DType::kF32 ? "f32" : "bf16") + "_grad";
  EXPECT_TRUE(testing::close_to_reference(master, s.master, 1e-6, 1e-6, tag + "_master"));
  EXPECT_TRUE(testing::close_to_reference(m, s.m, 1e-6, 1e-6, tag + "_m"));
  EXPECT_TRUE(testing::close_to_reference(v, s.v, 1e-7, 1e-6, tag + "_v"));
  // The working copy is the new master, rounded once.
  const std::vector<float> new_master = testing::to_vector(master), working = testing::to_vector(param_out);
  for (int64_t i = 0; i < n; ++i) {
    const float expected = param_dtype == DType::kBF16 ? static_cast<float>(bf16(new_master[i])) : new_master[i];
    EXPECT_EQ(working[i], expected) << i;
  }
}

TEST(CpuAdamW, ThreeStepsMatchTorchFormulaF32) { run_three_steps(DType::kF32, DType::kF32); }

TEST(CpuAdamW, ThreeStepsMatchTorchFormulaBf16GradAndWorkingCopy) { run_three_steps(DType::kBF16, DType::kBF16); }

TEST(CpuAdamW, WithoutWorkingCopyOrDecayIsPlainAdam) {
  // First step of Adam without decay moves every element by lr * sign(g) (up to eps).
  OwnedTensor master = testing::random_tensor({8}, 3), m({8}, DType::kF32), v({8}, DType::kF32);
  for (int i = 0; i < 8; ++i) m.data_as<float>()[i] = v.data_as<float>()[i] = 0.0f;
  const std::vector<float> before = testing::to_vector(master);
  OwnedTensor grad = testing::random_tensor({8}, 4);
  AdamWOptions o;
  o.lr = 1e-3f;
  cpu::adamw_step(master, m, v, grad, Tensor(), o);
  for (int i = 0; i < 8; ++i) {
    const float g = grad.data_as<float>()[i];
    EXPECT_NEAR(master.data_as<float>()[i], before[i] - 1e-3f * (g > 0 ? 1.0f : -1.0f), 1e-8) << i;
  }
}

}  // namespace
}  // namespace plm
