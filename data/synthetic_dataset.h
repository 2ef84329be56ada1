// `plm data synth`: a generated SFT data set of coloured shapes (data/synthetic_shapes.h). Images show one
// shape in one quadrant (PNG); videos show one shape crossing the frame left, right, up or down (H.264 MP4).
// Each split is a JSONL file in the `messages` format `data.train` reads (data/sft_jsonl.h), one
// question + answer per line, plus an "attributes" object with the ground truth for evaluation:
//
//   OUT/images/00012.png  OUT/videos/00003.mp4
//   OUT/train.jsonl  OUT/validation.jsonl  OUT/test.jsonl
//   {"messages": [{"role": "system", "content": "Answer in a few words."},
//                 {"role": "user", "content": [{"type": "video", "path": "videos/00003.mp4"},
//                                              {"type": "text", "text": "Describe the shape and how it moves."}]},
//                 {"role": "assistant", "content": [{"type": "text", "text": "red circle moving right"}]}],
//    "attributes": {"kind": "video", "shape": "circle", "colour": "red", "motion": "moving right"}}
//
// Deterministic: item k of a kind depends only on (seed, kind, k), so the same seed gives the same files, and
// the first N items of a larger set are the N items of a smaller one. Splits take each kind's items in order:
// train first, then validation, then test.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "data/synthetic_shapes.h"

namespace plm::data {

struct SynthConfig {
  int64_t num_images = 0;
  int64_t num_videos = 0;
  uint64_t seed = 0;
  int size = 112;      // width = height of images and frames, pixels; even, at least 16
  int num_frames = 8;  // per video, at least 2
  int fps = 8;
  double validation_fraction = 0.1;  // of each kind, rounded to whole items
  double test_fraction = 0.1;
};

enum class SynthSplit { kTrain, kValidation, kTest };
inline constexpr std::array kSynthSplits = {SynthSplit::kTrain, SynthSplit::kValidation, SynthSplit::kTest};
const char* name(SynthSplit split);  // "train", "validation", "test": also the JSONL file's stem

enum class MediaKind { kImage, kVideo };

// One generated picture or clip: what it shows and how it is drawn.
struct SynthItem {
  MediaKind kind = MediaKind::kImage;
  int64_t index = 0;  // among the items of its kind
  SynthSplit split = SynthSplit::kTrain;
  ShapeAttributes attributes;
  Rgb8 background;
  ShapeSprite first, last;  // the sprite in the first and last frame (equal for an image)
  std::string media;        // relative to the output directory
};

// Checks the config's ranges; the message names the field and its value.
absl::Status validate_synth_config(const SynthConfig& config);

// Every item, images then videos: attributes and geometry only, nothing is drawn.
std::vector<SynthItem> plan_synthetic_items(const SynthConfig& config);

// The pictures of an item: one for an image, num_frames for a video (the sprite moving linearly).
std::vector<RgbImage> render_synthetic_item(const SynthItem& item, const SynthConfig& config);

// The conversation of every item: this system turn (short, so that the picture's tokens are a good part of
// the prompt; without one PLM's template adds a 40-token default), the user's question with the media, the
// answer (describe()).
inline constexpr const char* kSyntheticSystemPrompt = "Answer in a few words.";
const char* synthetic_question(MediaKind kind);

struct SynthSummary {
  std::vector<SynthItem> items;
  std::vector<std::filesystem::path> jsonl_files;  // train, validation, test
};

// Writes the media files and the three JSONL files under out_dir (created). progress(done, total) is called
// after each media file, from one thread at a time.
absl::StatusOr<SynthSummary> write_synthetic_dataset(const SynthConfig& config, const std::filesystem::path& out_dir,
                                                     const std::function<void(int64_t, int64_t)>& progress = {});

// A split file read back (write_synthetic_dataset's format): per line, the media file (resolved against the
// file's folder), the system turn, the question, the expected answer and the ground truth. Errors name
// file:line.
struct SynthExample {
  MediaKind kind = MediaKind::kImage;
  std::filesystem::path media;
  std::string system;
  std::string question;
  std::string answer;
  ShapeAttributes attributes;
};
absl::StatusOr<std::vector<SynthExample>> read_synthetic_split(const std::filesystem::path& jsonl);

}  // namespace plm::data
