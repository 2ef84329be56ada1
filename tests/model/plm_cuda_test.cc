// The bf16 CUDA model against the f32 CPU model (and HF's bf16 greedy tokens) on the tiny golden
// checkpoints. Skips, saying why, on machines without a GPU.
#include <gtest/gtest.h>

#include <cmath>

#include "core/cuda/runtime.h"
#include "model/generator.h"
#include "model/plm_model.h"
#include "model/weights/weight_store.h"
#include "tests/core/test_util.h"

namespace plm::model {
namespace {

const std::string kFixtures = std::string(PLM_SOURCE_DIR) + "/tests/fixtures/models/";

OwnedTensor load(const std::string& file, const std::string& name, std::optional<DType> dtype = std::nullopt) {
  absl::StatusOr<WeightStore> store = WeightStore::open(file);
  EXPECT_TRUE(store.ok()) << store.status();
  if (!store->contains(name)) return OwnedTensor();
  absl::StatusOr<OwnedTensor> t = store->load(name, dtype);
  EXPECT_TRUE(t.ok()) << t.status();
  return std::move(*t);
}

class PlmCuda : public ::testing::TestWithParam<std::string> {};

TEST_P(PlmCuda, Bf16LogitsTrackTheCpuModel) {
  PLM_SKIP_WITHOUT_CUDA();
  const std::string model_dir = GetParam();
  absl::StatusOr<std::unique_ptr<PlmModel>> cpu = PlmModel::load(kFixtures + model_dir, Device::cpu());
  absl::StatusOr<std::unique_ptr<PlmModel>> gpu = PlmModel::load(kFixtures + model_dir, Device::cuda(0));
  ASSERT_TRUE(cpu.ok() && gpu.ok());
  const std::string expected = kFixtures + "expected/" + model_dir + "/image.safetensors";
  OwnedTensor ids_tensor = load(expected, "input_ids");
  const std::vector<int32_t> ids(ids_tensor.data_as<int32_t>(), ids_tensor.data_as<int32_t>() + ids_tensor.numel());
  OwnedTensor pixels = load(kFixtures + "inputs/image.safetensors", "pixel_values", DType::kF32);
  pixels.reshape({pixels.size(1), pixels.size(2), pixels.size(3), pixels.size(4)});

  const auto last_logits = [&](const PlmModel& model) {
    const OwnedTensor rows = model.encode_media(pixels);
    std::unique_ptr<KvCache> cache = model.make_cache(1, static_cast<int64_t>(ids.size()));
    absl::StatusOr<OwnedTensor> logits =
        model.forward(ids, {{{0, 0, static_cast<int64_t>(ids.size())}}}, {rows.view(), Tensor()}, *cache, false);
    EXPECT_TRUE(logits.ok()) << logits.status();
    return to_device(*logits, Device::cpu());
  };
  const OwnedTensor want = last_logits(**cpu), got = last_logits(**gpu);
  double diff = 0.0, scale = 0.0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(got.data_as<float>()[i]) - want.data_as<float>()[i]));
    scale = std::max(scale, std::abs(static_cast<double>(want.data_as<float>()[i])));
  }
  std::printf("[cuda] %s: bf16 CUDA vs f32 CPU last-position logits: max abs diff %.3g (max |logit| %.3g)\n",
              model_dir.c_str(), diff, scale);
  RecordProperty("max_abs_diff", std::to_string(diff));
  EXPECT_LE(diff, 0.05 * scale);  // bf16 activations: ~3 significant digits through a few layers

  // Greedy tokens: equal to HF's bf16 run up to the first step whose top-2 margin is below bf16 resolution.
  const std::string bf16_expected = kFixtures + "expected/" + model_dir + "/image.bf16.safetensors";
  OwnedTensor hf_tokens = load(bf16_expected, "generate.tokens");
  OwnedTensor margins = load(bf16_expected, "generate.top2_logits");
  GenerationRequest request;
  request.prompt_ids = ids;
  request.image_pixels = pixels;
  GenerationOptions options;
  options.max_new_tokens = static_cast<int>(hf_tokens.numel());
  options.eos_ids = {};
  absl::StatusOr<std::vector<GenerationResult>> results = generate(**gpu, {request}, options);
  ASSERT_TRUE(results.ok()) << results.status();
  for (int64_t i = 0; i < hf_tokens.numel(); ++i) {
    const float top1 = margins.data_as<float>()[2 * i], top2 = margins.data_as<float>()[2 * i + 1];
    if (top1 - top2 < 0.05f * std::abs(top1)) break;  // HF's own bf16 choice is a near-tie from here on
    ASSERT_EQ((*results)[0].tokens[i], hf_tokens.data_as<int32_t>()[i]) << "step " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, PlmCuda, ::testing::Values("cls_tied", "nocls_untied"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace plm::model
