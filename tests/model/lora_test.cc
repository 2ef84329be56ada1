// LoRA / DoRA on the whole model (model/lora.h), CPU f32 on the tiny golden checkpoint: attaching initialises
// like peft (A in ±1/sqrt(in) from the seed, B = 0, m = ‖W‖) and leaves the training loss and the inference
// logits unchanged; names and the trainable predicate; spec validation; adapter gradients through
// train_forward_backward against central differences of the loss, with dropout on (every projection's A
// and B; DoRA's magnitudes: its A and B follow the detached norm, checked per layer (tests/model/layers)
// and against peft's runs (tests/trainer/lora_fixture_test.cc)); and
// dropout masks keyed per sample, so a micro-batch split does not change them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/kernels/ops.h"
#include "model/flat_parameters.h"
#include "model/lora.h"
#include "model/training_pass.h"
#include "tests/model/training_samples.h"

namespace plm::model {
namespace {

using testing::load_sample;
using testing::pack;
using testing::Sample;

std::unique_ptr<PlmModel> tiny_model() {
  absl::StatusOr<std::unique_ptr<PlmModel>> m =
      PlmModel::load(testing::model_fixtures() + "cls_tied", Device::cpu(), {}, {.for_training = true});
  PLM_CHECK(m.ok()) << m.status();
  return std::move(*m);
}

LoraSpec all_targets(bool dora, double dropout, uint64_t seed) {
  return {.rank = 4, .alpha = 8.0, .dropout = dropout,
          .targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}, .dora = dora,
          .init_seed = seed};
}

std::vector<float> host(Tensor t) {
  const OwnedTensor h = to_device(t, Device::cpu());
  return std::vector<float>(h.data_as<float>(), h.data_as<float>() + h.numel());
}

// The loss per labelled token of `batch` (nothing differentiated).
double loss_of(const PlmModel& model, const TrainingBatch& batch) {
  FlatParameters none(model.weights(), DType::kF32, Device::cpu(), [](const std::string&) { return false; });
  absl::StatusOr<MicroBatchLoss> r = train_forward_backward(model, none.views(), batch, 1.0f);
  PLM_CHECK(r.ok()) << r.status();
  return r->loss_sum / static_cast<double>(r->labelled_tokens);
}

// Every position's logits of the inference forward (KV cache path).
std::vector<float> logits_of(const PlmModel& model, const std::vector<int32_t>& ids) {
  const int64_t t = static_cast<int64_t>(ids.size());
  std::unique_ptr<KvCache> cache = model.make_cache(1, t);
  absl::StatusOr<OwnedTensor> logits = model.forward(ids, {.chunks = {{0, 0, t}}}, {}, *cache, /*all_positions=*/true);
  PLM_CHECK(logits.ok()) << logits.status();
  return host(*logits);
}

TEST(Lora, AttachInitialisesLikePeftAndLeavesTheModelUnchanged) {
  const Sample text = load_sample("text");
  std::vector<OwnedTensor> storage;
  const TrainingBatch batch = pack({&text}, storage);
  for (const bool dora : {false, true}) {
    SCOPED_TRACE(dora ? "dora" : "lora");
    std::unique_ptr<PlmModel> model = tiny_model();
    const double base_loss = loss_of(*model, batch);
    const std::vector<float> base_logits = logits_of(*model, text.ids);
    ASSERT_TRUE(model->attach_lora(all_targets(dora, 0.0, 3)).ok());
    EXPECT_FALSE(model->attach_lora(all_targets(dora, 0.0, 3)).ok());  // once per model

    int adapters = 0;
    std::map<std::string, Tensor> params;
    model->for_each_parameter([&](const std::string& name, Tensor& t) { params[name] = t; });
    for (const auto& [name, t] : params) {
      if (!is_lora_parameter(name)) continue;
      ++adapters;
      const Tensor w = params.at(lora_base_weight_name(name));
      const std::vector<float> v = host(t);
      if (name.ends_with(".lora_A.weight")) {
        EXPECT_EQ(t.shape(), Shape({4, w.size(1)})) << name;
        const float bound = 1.0f / std::sqrt(static_cast<float>(w.size(1)));
        float lo = bound, hi = -bound;
        for (const float x : v) lo = std::min(lo, x), hi = std::max(hi, x);
        EXPECT_GE(lo, -bound) << name;
        EXPECT_LE(hi, bound) << name;
        EXPECT_GT(hi - lo, bound) << name;  // spread over the range, not constant
      } else if (name.ends_with(".lora_B.weight")) {
        EXPECT_EQ(t.shape(), Shape({w.size(0), 4})) << name;
        EXPECT_EQ(v, std::vector<float>(v.size(), 0.0f)) << name;
      } else {
        OwnedTensor norms({w.size(0)}, DType::kF32);
        row_norms(norms, w);
        EXPECT_EQ(v, host(norms)) << name;
      }
    }
    EXPECT_EQ(adapters, 2 * 7 * (dora ? 3 : 2));  // 2 layers x 7 projections
    EXPECT_EQ(loss_of(*model, batch), base_loss);  // B = 0 (and m = ‖W‖): exactly the base model
    EXPECT_EQ(logits_of(*model, text.ids), base_logits);
  }
}

// Adapters train: a model loaded for inference (bf16 weights, packed into weight panels on CPUs with AVX512-BF16)
// refuses them with a clear error instead of failing in a later GEMM.
TEST(Lora, AttachToAModelLoadedForInferenceIsAClearError) {
  absl::StatusOr<std::unique_ptr<PlmModel>> loaded =
      PlmModel::load(testing::model_fixtures() + "cls_tied", Device::cpu(), {}, {.cpu_compute = DType::kBF16});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const absl::Status status = (*loaded)->attach_lora(all_targets(false, 0.0, 3));
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("loaded for training"), std::string::npos) << status;
}

TEST(Lora, InitIsDeterministicPerSeed) {
  std::unique_ptr<PlmModel> a = tiny_model(), b = tiny_model(), c = tiny_model();
  ASSERT_TRUE(a->attach_lora(all_targets(false, 0.0, 7)).ok());
  ASSERT_TRUE(b->attach_lora(all_targets(false, 0.0, 7)).ok());
  ASSERT_TRUE(c->attach_lora(all_targets(false, 0.0, 8)).ok());
  const std::string name = "model.language_model.layers.1.mlp.up_proj.lora_A.weight";
  const auto values = [&](PlmModel& m) {
    std::vector<float> v;
    m.for_each_parameter([&](const std::string& n, Tensor& t) {
      if (n == name) v = host(t);
    });
    return v;
  };
  EXPECT_FALSE(values(*a).empty());
  EXPECT_EQ(values(*a), values(*b));
  EXPECT_NE(values(*a), values(*c));
}

TEST(Lora, NamesAndSpecValidation) {
  EXPECT_TRUE(is_lora_parameter("model.language_model.layers.0.self_attn.q_proj.lora_A.weight"));
  EXPECT_TRUE(is_lora_parameter("model.language_model.layers.1.mlp.down_proj.lora_B.weight"));
  EXPECT_TRUE(is_lora_parameter("model.language_model.layers.1.mlp.down_proj.lora_magnitude_vector"));
  EXPECT_FALSE(is_lora_parameter("model.language_model.layers.0.self_attn.q_proj.weight"));
  EXPECT_FALSE(is_lora_parameter("model.language_model.norm.weight"));
  EXPECT_EQ(lora_base_weight_name("model.language_model.layers.1.mlp.down_proj.lora_magnitude_vector"),
            "model.language_model.layers.1.mlp.down_proj.weight");

  EXPECT_TRUE(validate_lora_spec(all_targets(true, 0.1, 0)).ok());
  LoraSpec bad = all_targets(false, 0.0, 0);
  bad.rank = 0;
  EXPECT_FALSE(validate_lora_spec(bad).ok());
  bad = all_targets(false, 1.0, 0);
  EXPECT_FALSE(validate_lora_spec(bad).ok());
  bad = all_targets(false, 0.0, 0);
  bad.targets.push_back("qkv");
  EXPECT_NE(validate_lora_spec(bad).message().find("'qkv'"), std::string_view::npos);
  bad.targets = {"q_proj", "q_proj"};
  EXPECT_NE(validate_lora_spec(bad).message().find("twice"), std::string_view::npos);
  bad.targets = {};
  EXPECT_FALSE(validate_lora_spec(bad).ok());
}

// Sets every lora_B to small random values, so lora_A has a gradient too.
void randomise_b(PlmModel& model) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  model.for_each_parameter([&](const std::string& name, Tensor& t) {
    if (!name.ends_with(".lora_B.weight")) return;
    for (int64_t i = 0; i < t.numel(); ++i) t.data_as<float>()[i] = normal(rng);
  });
}

// d loss along a random unit direction of each selected adapter tensor: analytic vs central differences.
void check_gradients_by_finite_differences(PlmModel& model, const TrainingBatch& batch,
                                           const std::function<bool(const std::string&)>& check) {
  const int64_t labelled = std::count_if(batch.targets.begin(), batch.targets.end(), [](int32_t t) { return t >= 0; });
  FlatParameters grads(model.weights(), DType::kF32, Device::cpu(), is_lora_parameter);
  ASSERT_TRUE(train_forward_backward(model, grads.views(), batch, 1.0f / static_cast<float>(labelled)).ok());
  std::mt19937 rng(5);
  std::normal_distribution<double> normal;
  int checked = 0;
  model.for_each_parameter([&](const std::string& name, Tensor& w) {
    if (!is_lora_parameter(name) || !check(name)) return;
    const FlatEntry* e = grads.find(name);
    ASSERT_NE(e, nullptr) << name;
    const std::vector<float> g = host(grads.flat().slice(0, e->offset, e->offset + e->numel));
    // u = unit(unit(g) + unit(r)), r random: the signal is ~|g| / sqrt(2) and a wrong component of g shows.
    std::vector<double> u(g.size());
    double norm_r = 0.0, norm_g = 0.0;
    for (size_t i = 0; i < u.size(); ++i) {
      u[i] = normal(rng);
      norm_r += u[i] * u[i];
      norm_g += static_cast<double>(g[i]) * g[i];
    }
    ASSERT_GT(norm_g, 0.0) << name << " has a zero gradient";
    double norm_u = 0.0, analytic = 0.0;
    for (size_t i = 0; i < u.size(); ++i) {
      u[i] = g[i] / std::sqrt(norm_g) + u[i] / std::sqrt(norm_r);
      norm_u += u[i] * u[i];
    }
    for (size_t i = 0; i < u.size(); ++i) analytic += g[i] * (u[i] /= std::sqrt(norm_u));
    const std::vector<float> w0 = host(w);
    const auto central = [&](double eps) {
      const auto shifted = [&](double step) {
        for (size_t i = 0; i < u.size(); ++i) w.data_as<float>()[i] = static_cast<float>(w0[i] + step * u[i]);
        return loss_of(model, batch);
      };
      return (shifted(eps) - shifted(-eps)) / (2.0 * eps);
    };
    // Richardson extrapolation cancels the eps^2 term; the steps stay well above the f32 loss' noise.
    const double numeric = (4.0 * central(1e-2) - central(2e-2)) / 3.0;
    std::copy(w0.begin(), w0.end(), w.data_as<float>());
    // Measured: within 1.2e-4 relative (the f32 loss' noise over eps).
    EXPECT_NEAR(numeric, analytic, 1e-3 * std::abs(analytic) + 1e-5) << name << " (|g| " << std::sqrt(norm_g) << ")";
    ++checked;
  });
  EXPECT_GT(checked, 0);
}

TEST(Lora, GradientsThroughTheModelMatchFiniteDifferencesWithDropout) {
  const Sample text = load_sample("text");
  std::vector<OwnedTensor> storage;
  TrainingBatch batch = pack({&text}, storage);
  batch.lora_dropout_keys = {lora_dropout_key(1234, 1, 0)};
  std::unique_ptr<PlmModel> model = tiny_model();
  ASSERT_TRUE(model->attach_lora(all_targets(false, 0.2, 3)).ok());
  randomise_b(*model);
  // Layer 0's fourteen tensors (every projection's A and B): the wiring is the same in every layer.
  check_gradients_by_finite_differences(
      *model, batch, [](const std::string& name) { return name.starts_with("model.language_model.layers.0."); });
}

TEST(Lora, DoraMagnitudeGradientsMatchFiniteDifferencesWithDropout) {
  const Sample text = load_sample("text");
  std::vector<OwnedTensor> storage;
  TrainingBatch batch = pack({&text}, storage);
  batch.lora_dropout_keys = {lora_dropout_key(1234, 1, 0)};
  std::unique_ptr<PlmModel> model = tiny_model();
  ASSERT_TRUE(model->attach_lora(all_targets(true, 0.2, 3)).ok());
  randomise_b(*model);
  check_gradients_by_finite_differences(
      *model, batch, [](const std::string& name) {
        return name.starts_with("model.language_model.layers.1.") && name.ends_with(".lora_magnitude_vector");
      });
}

TEST(Lora, DropoutMasksFollowTheSampleNotTheMicroBatch) {
  const Sample text = load_sample("text"), image = load_sample("image");
  std::vector<OwnedTensor> storage;
  TrainingBatch both = pack({&text, &image}, storage), first = pack({&text}, storage), second = pack({&image}, storage);
  const uint64_t k0 = lora_dropout_key(9, 4, 0), k1 = lora_dropout_key(9, 4, 1);
  both.lora_dropout_keys = {k0, k1};
  first.lora_dropout_keys = {k0};
  second.lora_dropout_keys = {k1};
  std::unique_ptr<PlmModel> model = tiny_model();
  ASSERT_TRUE(model->attach_lora(all_targets(false, 0.3, 3)).ok());
  randomise_b(*model);
  FlatParameters together(model->weights(), DType::kF32, Device::cpu(), is_lora_parameter);
  FlatParameters split(model->weights(), DType::kF32, Device::cpu(), is_lora_parameter);
  absl::StatusOr<MicroBatchLoss> r = train_forward_backward(*model, together.views(), both, 0.01f);
  ASSERT_TRUE(r.ok()) << r.status();
  absl::StatusOr<MicroBatchLoss> r0 = train_forward_backward(*model, split.views(), first, 0.01f);
  absl::StatusOr<MicroBatchLoss> r1 = train_forward_backward(*model, split.views(), second, 0.01f);
  ASSERT_TRUE(r0.ok() && r1.ok());
  EXPECT_NEAR(r->loss_sum, r0->loss_sum + r1->loss_sum, 1e-5 * r->loss_sum);
  const std::vector<float> a = host(together.flat()), b = host(split.flat());
  double worst = 0.0, largest = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, std::abs(static_cast<double>(a[i]) - b[i]));
    largest = std::max(largest, std::abs(static_cast<double>(a[i])));
  }
  EXPECT_LE(worst, 1e-5 * largest);

  // Other keys, other masks; no keys, an error.
  TrainingBatch other = pack({&text}, storage);
  other.lora_dropout_keys = {lora_dropout_key(9, 5, 0)};
  EXPECT_NE(loss_of(*model, other), loss_of(*model, first));
  other.lora_dropout_keys.clear();
  FlatParameters grads(model->weights(), DType::kF32, Device::cpu(), is_lora_parameter);
  const absl::StatusOr<MicroBatchLoss> missing = train_forward_backward(*model, grads.views(), other, 0.01f);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace plm::model
