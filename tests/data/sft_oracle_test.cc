// The SFT pipeline against HF's processor on tests/fixtures/training/sft (tools/reference/
// make_training_fixtures.py): for every line the ids, both label masks, tiles / frames per item and the
// pixels (as u8 levels) equal what HF made, through the JSONL path and through a packed store.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "data/pixel_levels.h"
#include "data/sft_jsonl.h"
#include "data/sft_store_reader.h"
#include "data/sft_store_writer.h"
#include "tests/data/preprocessing_fixtures.h"
#include "tests/data/sft_test_util.h"
#include "tests/data/tokenizer_test_util.h"

namespace plm::data {
namespace {

using plm::testing::llama3_tokenizer;
using plm::testing::tiny_processor;

std::filesystem::path sft_fixture_dir() { return plm::testing::fixtures_dir() / "training" / "sft"; }

const nlohmann::json& expected_samples() {
  static const nlohmann::json doc =
      nlohmann::json::parse(plm::testing::read_test_file(sft_fixture_dir() / "expected_samples.json"));
  return doc;
}

// The fixture's data.num_frames: exactly this many frames per video, as HF samples them.
SftDataConfig fixture_config(LabelMode labels) {
  SftDataConfig config;
  config.labels = labels;
  config.media.video_sampling = {.num_frames = expected_samples()["num_frames"].get<int64_t>()};
  return config;
}

std::string mask_string(const std::vector<uint8_t>& mask) {
  std::string out;
  for (uint8_t bit : mask) out += bit ? '1' : '0';
  return out;
}

// Our f32 pixels as u8 levels must be HF's stored levels (HF's values are (u8 - 127.5) / 127.5 exactly).
void expect_levels(const OwnedTensor& pixels, const VideoProcessorConfig& normalisation_source,
                   const std::map<std::string, plm::testing::U8Array>& expected, const std::string& key) {
  const auto it = expected.find(key);
  ASSERT_EQ(pixels.view().defined(), it != expected.end()) << key;
  if (it == expected.end()) return;
  const PixelNormalizer normalizer(normalisation_source.rescale_factor, normalisation_source.image_mean,
                                   normalisation_source.image_std);
  absl::StatusOr<std::vector<uint8_t>> levels = pixels_to_levels(pixels, normalizer);
  ASSERT_TRUE(levels.ok()) << key << ": " << levels.status();
  EXPECT_EQ(*levels, it->second.data) << key;
}

void expect_matches_hf(const SftDataset& dataset, LabelMode labels) {
  const auto pixels = plm::testing::load_u8_safetensors(sft_fixture_dir() / "expected_pixels.safetensors");
  const nlohmann::json& samples = expected_samples()["samples"];
  ASSERT_EQ(dataset.size(), static_cast<int64_t>(samples.size()));
  VideoProcessorConfig image_normalisation;  // the image settings in the video struct's shape
  image_normalisation.rescale_factor = tiny_processor().image.rescale_factor;
  image_normalisation.image_mean = tiny_processor().image.image_mean;
  image_normalisation.image_std = tiny_processor().image.image_std;
  for (const nlohmann::json& expected : samples) {
    const int64_t line = expected["line"].get<int64_t>();
    SCOPED_TRACE(absl::StrCat(dataset.location(line), " (", label_mode_name(labels), ")"));
    absl::StatusOr<SftSample> sample = dataset.sample(line);
    ASSERT_TRUE(sample.ok()) << sample.status();
    EXPECT_EQ(sample->ids, expected["input_ids"].get<std::vector<int32_t>>());
    const char* key = labels == LabelMode::kAssistant ? "labels_assistant" : "labels_all_but_media";
    EXPECT_EQ(mask_string(sample->label_mask), expected[key].get<std::string>());
    EXPECT_EQ(sample->num_labelled(), expected["num_labelled"][label_mode_name(labels)].get<int64_t>());
    EXPECT_EQ(sample->tiles_per_image, expected["image_tiles"].get<std::vector<int64_t>>());
    EXPECT_EQ(sample->frames_per_video, expected["video_frames"].get<std::vector<int64_t>>());
    expect_levels(sample->image_pixels, image_normalisation, pixels, absl::StrCat(line, ".pixel_values_u8"));
    expect_levels(sample->video_pixels, tiny_processor().video, pixels, absl::StrCat(line, ".pixel_values_videos_u8"));
  }
}

TEST(SftOracle, JsonlSamplesEqualHfProcessorOutput) {
  for (const LabelMode labels : {LabelMode::kAssistant, LabelMode::kAllButMedia}) {
    absl::StatusOr<std::unique_ptr<SftJsonlDataset>> dataset = SftJsonlDataset::open(
        sft_fixture_dir() / "train.jsonl", llama3_tokenizer(), tiny_processor(), fixture_config(labels));
    ASSERT_TRUE(dataset.ok()) << dataset.status();
    expect_matches_hf(**dataset, labels);
  }
}

TEST(SftOracle, PackedStoreSamplesEqualHfProcessorOutput) {
  const std::filesystem::path store = plm::testing::fresh_temp_dir("sft_oracle_store") / "train.h5";
  absl::StatusOr<PackSummary> summary = pack_sft_store(sft_fixture_dir() / "train.jsonl", store, llama3_tokenizer(),
                                                       tiny_processor(), fixture_config(LabelMode::kAssistant));
  ASSERT_TRUE(summary.ok()) << summary.status();
  for (const LabelMode labels : {LabelMode::kAssistant, LabelMode::kAllButMedia}) {
    absl::StatusOr<std::unique_ptr<SftStoreDataset>> dataset =
        SftStoreDataset::open(store, llama3_tokenizer(), tiny_processor(), fixture_config(labels));
    ASSERT_TRUE(dataset.ok()) << dataset.status();
    expect_matches_hf(**dataset, labels);
  }
}

}  // namespace
}  // namespace plm::data
