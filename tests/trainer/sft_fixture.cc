#include "tests/trainer/sft_fixture.h"

#include <nlohmann/json.hpp>

#include "core/check.h"
#include "model/json_fields.h"
#include "model/weights/weight_store.h"

namespace plm::trainer::testing {

std::string training_fixtures() { return std::string(PLM_SOURCE_DIR) + "/tests/fixtures/training/"; }

namespace {

// (u8 - 127.5) / 127.5 of a stored [1, N, 3, H, W] U8 tensor as (N, 3, H, W) f32.
OwnedTensor pixels_of(const model::WeightStore& store, const std::string& key) {
  absl::StatusOr<OwnedTensor> levels = store.load(key);
  PLM_CHECK(levels.ok()) << levels.status();
  const Shape& s = levels->shape();
  OwnedTensor pixels({s[0] * s[1], s[2], s[3], s[4]}, DType::kF32);
  for (int64_t i = 0; i < pixels.numel(); ++i) {
    pixels.data_as<float>()[i] = (static_cast<float>(levels->data_as<uint8_t>()[i]) - 127.5f) / 127.5f;
  }
  return pixels;
}

}  // namespace

std::vector<model::TrainingBatch> sft_fixture_batches(const std::vector<int>& lines, FixtureLabels labels,
                                                      std::vector<OwnedTensor>& storage) {
  const std::string dir = training_fixtures() + "sft/";
  absl::StatusOr<std::string> text = model::read_text_file(dir + "expected_samples.json");
  PLM_CHECK(text.ok()) << text.status();
  const nlohmann::json samples = nlohmann::json::parse(*text).at("samples");
  absl::StatusOr<model::WeightStore> pixels = model::WeightStore::open(dir + "expected_pixels.safetensors");
  PLM_CHECK(pixels.ok()) << pixels.status();
  const char* mask_key = labels == FixtureLabels::kAssistant ? "labels_assistant" : "labels_all_but_media";
  std::vector<model::TrainingBatch> batches;
  for (const int line : lines) {
    const nlohmann::json& sample = samples.at(static_cast<size_t>(line));
    model::TrainingBatch b;
    b.ids = sample.at("input_ids").get<std::vector<int32_t>>();
    const std::string mask = sample.at(mask_key).get<std::string>();
    PLM_CHECK_EQ(mask.size(), b.ids.size()) << "line " << line;
    // Label i marks token i as the target of position i - 1.
    for (size_t i = 0; i < b.ids.size(); ++i) {
      const bool labelled = i + 1 < b.ids.size() && mask[i + 1] == '1';
      b.targets.push_back(labelled ? b.ids[i + 1] : model::kIgnoreTarget);
    }
    b.lengths = {static_cast<int64_t>(b.ids.size())};
    const std::string prefix = std::to_string(line) + ".";
    if (pixels->contains(prefix + "pixel_values_u8")) {
      storage.push_back(pixels_of(*pixels, prefix + "pixel_values_u8"));
      b.image_pixels = storage.back().view();
    }
    if (pixels->contains(prefix + "pixel_values_videos_u8")) {
      storage.push_back(pixels_of(*pixels, prefix + "pixel_values_videos_u8"));
      b.video_pixels = storage.back().view();
    }
    batches.push_back(std::move(b));
  }
  return batches;
}

}  // namespace plm::trainer::testing
