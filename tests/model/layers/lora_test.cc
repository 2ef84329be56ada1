// LoRA / DoRA on one Linear (model/layers/lora.h), CPU f32, against a double-precision reference of peft's
// forward written out element by element: the forward, every gradient (dx, dA, dB, DoRA's dm, the bias)
// against central differences of the reference with DoRA's norm held fixed (peft detaches it), with and
// without dropout; the += rule; the merged weight; and that B = 0 (with m = ‖W‖) starts at the base layer.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "core/kernels/ops.h"
#include "model/layers/linear.h"
#include "tests/core/test_util.h"

namespace plm::model {
namespace {

using plm::testing::random_tensor;
using plm::testing::to_vector;

constexpr int64_t kRows = 5, kIn = 7, kOut = 6, kRank = 3;
constexpr float kScaling = 2.0f;

struct Case {
  bool dora = false;
  float dropout = 0.0f;
  bool bias = false;
  std::string label() const {
    return std::string(dora ? "dora" : "lora") + (dropout > 0.0f ? "_dropout" : "") + (bias ? "_bias" : "");
  }
};

const Case kCases[] = {{false, 0.0f, false}, {false, 0.0f, true}, {false, 0.3f, true}, {true, 0.0f, false},
                       {true, 0.3f, false}};

// A layer with every tensor random (B too, so every gradient is non-zero) and its own storage.
struct Fixture {
  OwnedTensor weight, bias, a, b, magnitude, x, keys;
  Linear layer;

  explicit Fixture(const Case& c) {
    weight = random_tensor({kOut, kIn}, 1);
    a = random_tensor({kRank, kIn}, 2);
    b = random_tensor({kOut, kRank}, 3);
    x = random_tensor({kRows, kIn}, 4);
    layer.weight = weight;
    if (c.bias) {
      bias = random_tensor({kOut}, 5);
      layer.bias = bias;
    }
    if (c.dora) magnitude = random_tensor({kOut}, 6, 0.5f, 2.0f);
    layer.lora = {.a = a, .b = b, .magnitude = magnitude, .rank = kRank, .dora = c.dora, .scaling = kScaling,
                  .dropout = c.dropout, .site = 9};
    keys = OwnedTensor({kRows}, DType::kI64);
    for (int64_t r = 0; r < kRows; ++r) keys.data_as<int64_t>()[r] = 1000 + 17 * r;
  }
};

// The arena the layer asks for, exactly.
struct Pass {
  Arena arena;
  LoraPass pass;
  Pass(const Linear& layer, Tensor keys) : arena(lora_scratch_bytes(layer, kRows), Device::cpu()) {
    pass = {.scratch = &arena, .row_keys = keys};
  }
};

using Values = std::vector<double>;

Values doubles(Tensor t) {
  const std::vector<float> v = to_vector(t);
  return Values(v.begin(), v.end());
}

// The reference's inputs as doubles; norm, when given, replaces DoRA's ‖W + s·B·A‖ (held fixed).
struct Reference {
  Values w, bias, a, b, m, x, mask;  // mask: D's factor per x element (1 without dropout)
  bool dora = false;

  Values norms() const {
    Values n(kOut);
    for (int64_t o = 0; o < kOut; ++o) {
      double sq = 0.0;
      for (int64_t i = 0; i < kIn; ++i) {
        double v = w[o * kIn + i];
        for (int64_t k = 0; k < kRank; ++k) v += kScaling * b[o * kRank + k] * a[k * kIn + i];
        sq += v * v;
      }
      n[o] = std::sqrt(sq);
    }
    return n;
  }

  Values forward(const Values& norm) const {
    Values y(kRows * kOut);
    for (int64_t r = 0; r < kRows; ++r) {
      Values u(kRank, 0.0);
      for (int64_t k = 0; k < kRank; ++k) {
        for (int64_t i = 0; i < kIn; ++i) u[k] += x[r * kIn + i] * mask[r * kIn + i] * a[k * kIn + i];
      }
      for (int64_t o = 0; o < kOut; ++o) {
        double base = bias.empty() ? 0.0 : bias[o], dropped_base = 0.0, lora = 0.0;
        for (int64_t i = 0; i < kIn; ++i) {
          base += x[r * kIn + i] * w[o * kIn + i];
          dropped_base += x[r * kIn + i] * mask[r * kIn + i] * w[o * kIn + i];
        }
        for (int64_t k = 0; k < kRank; ++k) lora += kScaling * u[k] * b[o * kRank + k];
        const double g = dora ? m[o] / norm[o] : 1.0;
        y[r * kOut + o] = dora ? base + (g - 1.0) * dropped_base + g * lora : base + lora;
      }
    }
    return y;
  }
};

Reference reference_of(const Fixture& f, const Case& c) {
  Reference ref;
  ref.w = doubles(f.weight);
  if (c.bias) ref.bias = doubles(f.bias);
  ref.a = doubles(f.a);
  ref.b = doubles(f.b);
  if (c.dora) ref.m = doubles(f.magnitude);
  ref.x = doubles(f.x);
  ref.dora = c.dora;
  // D's factors: the dropout kernel applied to ones with the layer's keys and site.
  OwnedTensor ones({kRows, kIn}, DType::kF32);
  fill(ones, 1.0f);
  if (c.dropout > 0.0f) dropout_forward(ones, ones, f.keys, f.layer.lora.site, c.dropout);
  ref.mask = doubles(ones);
  return ref;
}

double max_abs(const Values& v) {
  double m = 0.0;
  for (const double e : v) m = std::max(m, std::abs(e));
  return m;
}

void expect_close(const Values& got, const Values& want, double rtol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  const double scale = max_abs(want);
  ASSERT_GT(scale, 0.0) << what << " is all zero";
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], rtol * scale) << what << " [" << i << "]";
}

TEST(LoraLayer, ForwardMatchesReference) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.label());
    Fixture f(c);
    Pass p(f.layer, f.keys);
    OwnedTensor y({kRows, kOut}, DType::kF32);
    f.layer.forward(y, f.x, p.pass);
    const Reference ref = reference_of(f, c);
    expect_close(doubles(y), ref.forward(ref.norms()), 1e-6, "y");
    EXPECT_EQ(p.arena.bytes_used(), 0u);  // scratch released
  }
}

// d(sum(probe * y)) / d(values) by central differences of the reference, DoRA's norm held at its value.
Values numeric_gradient(Reference ref, Values Reference::*field, const Values& probe) {
  const Values norm = ref.norms();
  Values grad((ref.*field).size());
  const double h = 1e-5;
  for (size_t i = 0; i < grad.size(); ++i) {
    const double saved = (ref.*field)[i];
    const auto loss = [&](double value) {
      (ref.*field)[i] = value;
      const Values y = ref.forward(norm);
      double l = 0.0;
      for (size_t j = 0; j < y.size(); ++j) l += probe[j] * y[j];
      return l;
    };
    grad[i] = (loss(saved + h) - loss(saved - h)) / (2.0 * h);
    (ref.*field)[i] = saved;
  }
  return grad;
}

TEST(LoraLayer, BackwardMatchesFiniteDifferencesWithTheNormDetached) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.label());
    Fixture f(c);
    Pass p(f.layer, f.keys);
    const OwnedTensor probe = random_tensor({kRows, kOut}, 7);
    OwnedTensor dx({kRows, kIn}, DType::kF32), da({kRank, kIn}, DType::kF32), db({kOut, kRank}, DType::kF32);
    OwnedTensor dm({kOut}, DType::kF32), dbias({kOut}, DType::kF32);
    for (const Tensor& t : {da.view(), db.view(), dm.view(), dbias.view()}) fill(t, 0.0f);
    Linear grad;
    grad.lora = f.layer.lora;
    grad.lora.a = da;
    grad.lora.b = db;
    grad.lora.magnitude = c.dora ? dm.view() : Tensor();
    if (c.bias) grad.bias = dbias;
    f.layer.backward(dx, grad, probe, f.x, {}, p.pass);
    EXPECT_EQ(p.arena.bytes_used(), 0u);

    const Reference ref = reference_of(f, c);
    const Values probe_values = doubles(probe);
    const double rtol = 1e-5;
    expect_close(doubles(dx), numeric_gradient(ref, &Reference::x, probe_values), rtol, "dx");
    expect_close(doubles(da), numeric_gradient(ref, &Reference::a, probe_values), rtol, "dA");
    expect_close(doubles(db), numeric_gradient(ref, &Reference::b, probe_values), rtol, "dB");
    if (c.dora) expect_close(doubles(dm), numeric_gradient(ref, &Reference::m, probe_values), rtol, "dm");
    if (c.bias) expect_close(doubles(dbias), numeric_gradient(ref, &Reference::bias, probe_values), rtol, "db");
  }
}

TEST(LoraLayer, ParameterGradientsAccumulateAndDxFollowsItsOption) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.label());
    Fixture f(c);
    Pass p(f.layer, f.keys);
    const OwnedTensor probe = random_tensor({kRows, kOut}, 8);
    OwnedTensor once({kRank * kIn + kOut * kRank + kOut}, DType::kF32), twice(once.shape(), DType::kF32);
    OwnedTensor dx_once({kRows, kIn}, DType::kF32), dx_twice({kRows, kIn}, DType::kF32);
    const auto grad_into = [&](Tensor flat) {
      fill(flat, 0.0f);
      Linear grad;
      grad.lora = f.layer.lora;
      grad.lora.a = flat.slice(0, 0, kRank * kIn).reshape({kRank, kIn});
      grad.lora.b = flat.slice(0, kRank * kIn, kRank * kIn + kOut * kRank).reshape({kOut, kRank});
      grad.lora.magnitude = c.dora ? flat.slice(0, kRank * kIn + kOut * kRank, flat.numel()) : Tensor();
      return grad;
    };
    const Linear g1 = grad_into(once), g2 = grad_into(twice);
    f.layer.backward(dx_once, g1, probe, f.x, {}, p.pass);
    f.layer.backward(dx_twice, g2, probe, f.x, {}, p.pass);
    f.layer.backward(dx_twice, g2, probe, f.x, {.accumulate_dx = true}, p.pass);
    Values doubled = doubles(once), doubled_dx = doubles(dx_once);
    for (double& v : doubled) v *= 2.0;
    for (double& v : doubled_dx) v *= 2.0;
    expect_close(doubles(twice), doubled, 1e-6, "parameter grads");
    expect_close(doubles(dx_twice), doubled_dx, 1e-6, "dx");
  }
}

TEST(LoraLayer, MergedWeightGivesTheAdaptedOutput) {
  for (const Case& c : kCases) {
    if (c.dropout > 0.0f || c.bias) continue;  // merging is for evaluation, where there is no dropout
    SCOPED_TRACE(c.label());
    Fixture f(c);
    Pass p(f.layer, Tensor());
    OwnedTensor merged({kOut, kIn}, DType::kF32), y({kRows, kOut}, DType::kF32), y_merged({kRows, kOut}, DType::kF32);
    lora_merged_weight(merged, f.layer);
    f.layer.forward(y, f.x, p.pass);
    matmul(y_merged, f.x, merged, {.trans_b = true});
    expect_close(doubles(y_merged), doubles(y), 1e-6, "x mergedᵀ");
  }
}

TEST(LoraLayer, ZeroBStartsAtTheBaseLayer) {
  for (const bool dora : {false, true}) {
    SCOPED_TRACE(dora ? "dora" : "lora");
    Fixture f(Case{.dora = dora, .dropout = 0.0f, .bias = false});
    fill(f.b, 0.0f);
    if (dora) row_norms(f.magnitude, f.weight);  // peft's init: m = ‖W‖ per row
    Pass p(f.layer, Tensor());
    OwnedTensor y({kRows, kOut}, DType::kF32), base({kRows, kOut}, DType::kF32);
    f.layer.forward(y, f.x, p.pass);
    matmul(base, f.x, f.weight, {.trans_b = true});
    expect_close(doubles(y), doubles(base), 1e-6, "y");
  }
}

}  // namespace
}  // namespace plm::model
