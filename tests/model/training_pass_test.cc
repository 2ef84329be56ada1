// The training pass (model/training_pass.h) on the tiny golden checkpoint, CPU f32: every parameter
// tensor's gradient against a central finite difference of the loss along a random direction, the +=
// rule, micro-batch split invariance, frozen parts, and that a text-only micro-batch runs no ViT. Also the bf16
// compute mode (LoadOptions::cpu_compute = kBF16 for training) against the f32 pass.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "core/kernels/ops.h"
#include "model/flat_parameters.h"
#include "model/training_pass.h"
#include "tests/model/training_samples.h"

namespace plm::model {
namespace {

using testing::load_sample;
using testing::pack;
using testing::Sample;

class TrainingPass : public testing::TinyTrainingTest {
 protected:
  double loss(const TrainingBatch& batch) {
    FlatParameters frozen(model_->weights(), DType::kF32, Device::cpu(), [](const std::string&) { return false; });
    absl::StatusOr<MicroBatchLoss> r = train_forward_backward(*model_, frozen.views(), batch, 1.0f);
    PLM_CHECK(r.ok()) << r.status();
    return r->loss_sum / static_cast<double>(r->labelled_tokens);
  }
};

std::vector<float> host(Tensor t) {
  const OwnedTensor h = to_device(t, Device::cpu());
  return std::vector<float>(h.data_as<float>(), h.data_as<float>() + h.numel());
}

// For every parameter tensor: d loss along a random direction u restricted to it, analytic <g, u> vs
// (L(w + eps u) - L(w - eps u)) / (2 eps).
TEST_F(TrainingPass, EveryParameterGradientMatchesFiniteDifferences) {
  std::vector<OwnedTensor> storage;
  const TrainingBatch batch = pack({&image_, &video_, &text_}, storage);
  const int64_t labelled = std::count_if(batch.targets.begin(), batch.targets.end(), [](int32_t t) { return t >= 0; });
  FlatParameters grads(model_->weights(), DType::kF32, Device::cpu());
  absl::StatusOr<MicroBatchLoss> r =
      train_forward_backward(*model_, grads.views(), batch, 1.0f / static_cast<float>(labelled));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->labelled_tokens, labelled);
  EXPECT_EQ(r->vision_tiles, 9);

  std::mt19937 rng(7);
  std::normal_distribution<double> normal;
  int checked = 0;
  model_->for_each_parameter([&](const std::string& name, Tensor& w) {
    const FlatEntry* e = grads.find(name);
    ASSERT_NE(e, nullptr) << name;
    const std::vector<float> g = host(grads.flat().slice(0, e->offset, e->offset + e->numel));
    // u = unit(unit(g) + unit(r)), r random: the signal is ~|g| / sqrt(2) and a wrong component of g in
    // any direction shows; a unit step keeps the central difference's truncation error tiny.
    std::vector<double> u(static_cast<size_t>(w.numel()));
    double norm_g = 0.0, norm_r = 0.0;
    for (size_t i = 0; i < u.size(); ++i) {
      u[i] = normal(rng);
      norm_r += u[i] * u[i];
      norm_g += static_cast<double>(g[i]) * g[i];
    }
    ASSERT_GT(norm_g, 0.0) << name << " has a zero gradient";
    double norm_u = 0.0;
    for (size_t i = 0; i < u.size(); ++i) {
      u[i] = g[i] / std::sqrt(norm_g) + u[i] / std::sqrt(norm_r);
      norm_u += u[i] * u[i];
    }
    double analytic = 0.0;
    for (size_t i = 0; i < u.size(); ++i) {
      u[i] /= std::sqrt(norm_u);
      analytic += static_cast<double>(g[i]) * u[i];
    }
    const std::vector<float> w0 = host(w);
    const auto central = [&](double eps) {
      const auto shifted = [&](double step) {
        for (size_t i = 0; i < u.size(); ++i) w.data_as<float>()[i] = static_cast<float>(w0[i] + step * u[i]);
        return loss(batch);
      };
      return (shifted(eps) - shifted(-eps)) / (2.0 * eps);
    };
    // The f32 loss jitters by ~1e-5 per token (f32 sums over the 128256-entry vocabulary), so the steps are
    // large and the absolute tolerance is ~1e-3; Richardson extrapolation cancels the eps^2 term. The
    // PyTorch gradient fixture is the tight check.
    const double numeric = (4.0 * central(5e-2) - central(1e-1)) / 3.0;
    std::copy(w0.begin(), w0.end(), w.data_as<float>());
    EXPECT_NEAR(numeric, analytic, 2e-2 * std::abs(analytic) + 2e-3) << name << " (|g| = " << std::sqrt(norm_g) << ")";
    ++checked;
  });
  EXPECT_EQ(checked, static_cast<int>(grads.entries().size()));
}

TEST_F(TrainingPass, ParameterGradientsAccumulateAndSplitsAgree) {
  std::vector<OwnedTensor> storage;
  const TrainingBatch both = pack({&image_, &text_}, storage);
  const TrainingBatch first = pack({&image_}, storage), second = pack({&text_}, storage);
  const float scale = 1.0f / 100.0f;
  FlatParameters once(model_->weights(), DType::kF32, Device::cpu()), twice(model_->weights(), DType::kF32, Device::cpu());
  FlatParameters split(model_->weights(), DType::kF32, Device::cpu());
  ASSERT_TRUE(train_forward_backward(*model_, once.views(), both, scale).ok());
  ASSERT_TRUE(train_forward_backward(*model_, twice.views(), both, scale).ok());
  ASSERT_TRUE(train_forward_backward(*model_, twice.views(), both, scale).ok());
  ASSERT_TRUE(train_forward_backward(*model_, split.views(), first, scale).ok());
  ASSERT_TRUE(train_forward_backward(*model_, split.views(), second, scale).ok());
  const std::vector<float> a = host(once.flat()), b = host(twice.flat()), c = host(split.flat());
  double worst_twice = 0.0, worst_split = 0.0, largest = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    worst_twice = std::max(worst_twice, std::abs(static_cast<double>(b[i]) - 2.0 * a[i]));
    worst_split = std::max(worst_split, std::abs(static_cast<double>(c[i]) - a[i]));
    largest = std::max(largest, std::abs(static_cast<double>(a[i])));
  }
  EXPECT_GT(largest, 1e-3);
  EXPECT_LE(worst_twice, 1e-6 * largest);
  EXPECT_LE(worst_split, 1e-5 * largest);
}

TEST_F(TrainingPass, FrozenVisionGetsNoGradientAndTextOnlyRunsNoVit) {
  std::vector<OwnedTensor> storage;
  const auto not_vision = [](const std::string& name) { return name.rfind("model.vision_tower.", 0) != 0; };
  FlatParameters grads(model_->weights(), DType::kF32, Device::cpu(), not_vision);
  EXPECT_FALSE(grads.views().vision.pos_embed.defined());
  EXPECT_TRUE(grads.views().projector.linear_1.weight.defined());
  absl::StatusOr<MicroBatchLoss> r = train_forward_backward(*model_, grads.views(), pack({&image_}, storage), 0.01f);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->vision_tiles, 5);
  const FlatEntry* projector = grads.find("model.multi_modal_projector.linear_1.weight");
  ASSERT_NE(projector, nullptr);
  const std::vector<float> g = host(grads.flat().slice(0, projector->offset, projector->offset + projector->numel));
  EXPECT_GT(*std::max_element(g.begin(), g.end()), 0.0f);

  absl::StatusOr<MicroBatchLoss> text = train_forward_backward(*model_, grads.views(), pack({&text_}, storage), 0.01f);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(text->vision_tiles, 0);
}

// Training in the bf16 compute mode (every projection's GEMMs and the head's on bf16-rounded operands, as
// PyTorch autocast) stays within bf16 noise of the f32 pass: the loss within 1 %, each parameter's gradient
// within 5 % (relative L2; bf16 keeps 8 significant bits, 0.4 % per operand) and pointing the same way, and
// differs from it (the mode is on).
TEST_F(TrainingPass, Bf16ComputeStaysWithinBf16NoiseOfF32) {
  absl::StatusOr<std::unique_ptr<PlmModel>> bf16_model = PlmModel::load(
      testing::model_fixtures() + "cls_tied", Device::cpu(), {}, {.for_training = true, .cpu_compute = DType::kBF16});
  ASSERT_TRUE(bf16_model.ok()) << bf16_model.status();
  std::vector<OwnedTensor> storage;
  const TrainingBatch batch = pack({&image_, &video_, &text_}, storage);
  FlatParameters f32_grads(model_->weights(), DType::kF32, Device::cpu());
  FlatParameters bf16_grads((*bf16_model)->weights(), DType::kF32, Device::cpu());
  absl::StatusOr<MicroBatchLoss> f32 = train_forward_backward(*model_, f32_grads.views(), batch, 1.0f);
  absl::StatusOr<MicroBatchLoss> bf16 = train_forward_backward(**bf16_model, bf16_grads.views(), batch, 1.0f);
  ASSERT_TRUE(f32.ok() && bf16.ok());
  const double loss_error = std::abs(bf16->loss_sum - f32->loss_sum) / std::abs(f32->loss_sum);
  EXPECT_LT(loss_error, 1e-2);
  EXPECT_NE(bf16->loss_sum, f32->loss_sum);
  double worst = 0.0;
  model_->for_each_parameter([&](const std::string& name, Tensor&) {
    const FlatEntry* a = f32_grads.find(name);
    const FlatEntry* b = bf16_grads.find(name);
    ASSERT_TRUE(a != nullptr && b != nullptr) << name;
    const std::vector<float> ga = host(f32_grads.flat().slice(0, a->offset, a->offset + a->numel));
    const std::vector<float> gb = host(bf16_grads.flat().slice(0, b->offset, b->offset + b->numel));
    double diff = 0.0, norm = 0.0;
    for (size_t i = 0; i < ga.size(); ++i) {
      diff += (static_cast<double>(gb[i]) - ga[i]) * (static_cast<double>(gb[i]) - ga[i]);
      norm += static_cast<double>(ga[i]) * ga[i];
    }
    const double error = std::sqrt(diff / std::max(norm, 1e-300));
    worst = std::max(worst, error);
    EXPECT_LT(error, 5e-2) << name;
  });
  RecordProperty("loss_relative_error", std::to_string(loss_error));
  RecordProperty("worst_gradient_relative_l2", std::to_string(worst));
  std::printf("bf16 training pass: loss %.6g vs f32 %.6g (relative %.2e), worst gradient relative L2 %.2e\n",
              bf16->loss_sum, f32->loss_sum, loss_error, worst);
}

TEST_F(TrainingPass, RejectsInconsistentBatches) {
  FlatParameters grads(model_->weights(), DType::kF32, Device::cpu());
  TrainingBatch b;
  b.ids = {1, 2, 3};
  b.targets = {2, 3};
  b.lengths = {3};
  EXPECT_FALSE(train_forward_backward(*model_, grads.views(), b, 1.0f).ok());
  b.targets = {2, 3, kIgnoreTarget};
  b.lengths = {2};
  EXPECT_FALSE(train_forward_backward(*model_, grads.views(), b, 1.0f).ok());
  b.lengths = {3};
  b.ids = {1, 128002, 3};  // a placeholder without pixels
  EXPECT_FALSE(train_forward_backward(*model_, grads.views(), b, 1.0f).ok());
}

}  // namespace
}  // namespace plm::model
