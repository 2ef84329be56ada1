// plm::cpu GELU (exact erf) and SwiGLU, forward and backward, against double-precision formulas and finite
// differences, including in-place calls; the vectorised forwards (vector_kernels.h) with every ISA this CPU runs.
#include <cmath>
#include <limits>
#include <numbers>
#include <vector>

#include "core/kernels/backends.h"
#include "core/kernels/cpu/vector_kernels.h"
#include "tests/core/kernels/reference_check.h"
#include "tests/core/kernels/simd_isas.h"
#include "tests/core/test_util.h"

namespace plm {
namespace {

using testing::close_to_reference;
using testing::random_tensor;
using testing::to_doubles;

double gelu(double x) { return 0.5 * x * (1.0 + std::erf(x / std::numbers::sqrt2)); }
// Phi(x) + x phi(x).
double gelu_grad(double x) {
  const double pdf = std::exp(-0.5 * x * x) / std::sqrt(2.0 * std::numbers::pi);
  return 0.5 * (1.0 + std::erf(x / std::numbers::sqrt2)) + x * pdf;
}
double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// Spans the saturated tails too: [-8, 8). (65, 3, 257) exceeds kMinParallelWork: the threaded path runs.
OwnedTensor wide_input(uint64_t seed) { return random_tensor({65, 3, 257}, seed, -8.0f, 8.0f); }

TEST(CpuGeluTest, ForwardAndBackwardMatchReference) {
  OwnedTensor x = wide_input(1);
  OwnedTensor dy = random_tensor(x.shape(), 2);
  OwnedTensor y(x.shape(), DType::kF32), dx(x.shape(), DType::kF32);
  cpu::gelu_forward(y, x);
  cpu::gelu_backward(dx, dy, x);
  const std::vector<double> xv = to_doubles(x), g = to_doubles(dy);
  std::vector<double> y_ref(xv.size()), dx_ref(xv.size());
  for (size_t i = 0; i < xv.size(); ++i) {
    y_ref[i] = gelu(xv[i]);
    dx_ref[i] = g[i] * gelu_grad(xv[i]);
  }
  EXPECT_TRUE(close_to_reference(y, y_ref, 1e-6, 1e-6, "err_y"));
  EXPECT_TRUE(close_to_reference(dx, dx_ref, 1e-6, 1e-6, "err_dx"));
}

TEST(CpuGeluTest, BackwardMatchesFiniteDifferences) {
  OwnedTensor x = random_tensor({65}, 3, -3.0f, 3.0f);
  OwnedTensor g = random_tensor({65}, 4);
  OwnedTensor y({65}, DType::kF32), dx({65}, DType::kF32);
  const auto loss = [&] {
    cpu::gelu_forward(y, x);
    return testing::dot(y, g);
  };
  const std::vector<double> numeric = testing::finite_difference(x, loss, 1e-2f);
  cpu::gelu_backward(dx, g, x);
  EXPECT_TRUE(close_to_reference(dx, numeric, 1e-4, 1e-3, "err_dx_vs_fd"));
}

TEST(CpuGeluTest, InPlace) {
  OwnedTensor x = wide_input(5);
  OwnedTensor y(x.shape(), DType::kF32);
  cpu::gelu_forward(y, x);
  cpu::gelu_forward(x, x);
  EXPECT_EQ(testing::max_abs_diff(x, y), 0.0f);
}

TEST(CpuSwigluTest, ForwardAndBackwardMatchReference) {
  OwnedTensor gate = wide_input(6), up = wide_input(7);
  OwnedTensor dout = random_tensor(gate.shape(), 8);
  OwnedTensor out(gate.shape(), DType::kF32), dgate(gate.shape(), DType::kF32), dup(gate.shape(), DType::kF32);
  cpu::swiglu_forward(out, gate, up);
  cpu::swiglu_backward(dgate, dup, dout, gate, up);
  const std::vector<double> gv = to_doubles(gate), uv = to_doubles(up), d = to_doubles(dout);
  std::vector<double> out_ref(gv.size()), dgate_ref(gv.size()), dup_ref(gv.size());
  for (size_t i = 0; i < gv.size(); ++i) {
    const double s = sigmoid(gv[i]);
    out_ref[i] = gv[i] * s * uv[i];
    dgate_ref[i] = d[i] * uv[i] * s * (1.0 + gv[i] * (1.0 - s));
    dup_ref[i] = d[i] * gv[i] * s;
  }
  EXPECT_TRUE(close_to_reference(out, out_ref, 1e-5, 1e-6, "err_out"));
  EXPECT_TRUE(close_to_reference(dgate, dgate_ref, 1e-5, 1e-6, "err_dgate"));
  EXPECT_TRUE(close_to_reference(dup, dup_ref, 1e-5, 1e-6, "err_dup"));
}

TEST(CpuSwigluTest, BackwardMatchesFiniteDifferences) {
  OwnedTensor gate = random_tensor({3, 17}, 9, -3.0f, 3.0f), up = random_tensor({3, 17}, 10, -3.0f, 3.0f);
  OwnedTensor g = random_tensor({3, 17}, 11);
  OwnedTensor out({3, 17}, DType::kF32), dgate({3, 17}, DType::kF32), dup({3, 17}, DType::kF32);
  const auto loss = [&] {
    cpu::swiglu_forward(out, gate, up);
    return testing::dot(out, g);
  };
  const std::vector<double> numeric_dgate = testing::finite_difference(gate, loss, 1e-2f);
  const std::vector<double> numeric_dup = testing::finite_difference(up, loss, 1e-2f);
  cpu::swiglu_backward(dgate, dup, g, gate, up);
  EXPECT_TRUE(close_to_reference(dgate, numeric_dgate, 1e-3, 1e-3, "err_dgate_vs_fd"));
  EXPECT_TRUE(close_to_reference(dup, numeric_dup, 1e-3, 1e-3, "err_dup_vs_fd"));
}

TEST(CpuSwigluTest, InPlace) {
  OwnedTensor gate = wide_input(12), up = wide_input(13);
  OwnedTensor dout = random_tensor(gate.shape(), 14);
  OwnedTensor dgate(gate.shape(), DType::kF32), dup(gate.shape(), DType::kF32);
  cpu::swiglu_backward(dgate, dup, dout, gate, up);
  // Backward overwriting its own inputs: dgate into gate, dup into up.
  cpu::swiglu_backward(gate, up, dout, gate, up);
  EXPECT_EQ(testing::max_abs_diff(gate, dgate), 0.0f);
  EXPECT_EQ(testing::max_abs_diff(up, dup), 0.0f);
  // Forward writing over gate (now holding dgate) matches an out-of-place call on the same values.
  OwnedTensor fresh(gate.shape(), DType::kF32);
  cpu::swiglu_forward(fresh, gate, up);
  cpu::swiglu_forward(gate, gate, up);
  EXPECT_EQ(testing::max_abs_diff(gate, fresh), 0.0f);
}

// Every ISA's forwards on an odd length (the masked tail), special values included, against the references.
TEST(CpuActivationKernelsTest, EveryIsaMatchesReference) {
  std::vector<float> x = testing::to_vector(random_tensor({1001}, 15, -8.0f, 8.0f));
  std::vector<float> up = testing::to_vector(random_tensor({1001}, 16, -8.0f, 8.0f));
  const float specials[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 30.0f, -30.0f, 100.0f, -100.0f, 1e20f, -1e20f};
  for (size_t i = 0; i < std::size(specials); ++i) x[i * 3] = specials[i];
  for (const cpu::SimdIsa isa : testing::runnable_isas()) {
    SCOPED_TRACE(cpu::simd_isa_name(isa));
    const cpu::VectorKernels& kernels = cpu::vector_kernels(isa);
    std::vector<float> y(x.size()), out(x.size());
    kernels.gelu(x.data(), y.data(), static_cast<int64_t>(x.size()));
    kernels.swiglu(x.data(), up.data(), out.data(), static_cast<int64_t>(x.size()));
    for (size_t i = 0; i < x.size(); ++i) {
      const double want_y = gelu(x[i]), want_out = x[i] * sigmoid(x[i]) * up[i];
      ASSERT_NEAR(y[i], want_y, 1e-6 + 1e-6 * std::abs(want_y)) << "gelu(" << x[i] << ")";
      ASSERT_NEAR(out[i], want_out, 1e-5 + 1e-6 * std::abs(want_out)) << "swiglu(" << x[i] << ", " << up[i] << ")";
    }
    const float nan = std::numeric_limits<float>::quiet_NaN();
    float nan_out = 0.0f;
    kernels.gelu(&nan, &nan_out, 1);
    EXPECT_TRUE(std::isnan(nan_out));
  }
}

}  // namespace
}  // namespace plm
