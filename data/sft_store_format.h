// The layout of an SFT sample store (`plm data pack`), shared by its writer and reader. Internal to
// plm_data. Datasets (T tokens, N samples, I images, V videos; every one chunked, byte-shuffled,
// deflated and Fletcher-32 checksummed):
//   input_ids             int32 (T)               every sample's ids, placeholders expanded, back to back
//   labels_assistant      uint8 (T)               the label mask of each mode (data/sft_sample.h)
//   labels_all_but_media  uint8 (T)
//   sample_token_offsets  int64 (N + 1)           sample i is tokens [off[i], off[i + 1])
//   image_tiles           uint8 (tiles, 3, t, t)  u8 levels of every tile (thumbnail first), images in order;
//                                                 pixel = PixelNormalizer(image settings).value(c, level)
//   tiles_per_image       int64 (I)
//   sample_image_offsets  int64 (N + 1)           sample i has images [off[i], off[i + 1])
//   video_frames          uint8 (frames, 3, h, w) likewise with the video settings
//   frames_per_video      int64 (V)
//   sample_video_offsets  int64 (N + 1)
// Root attribute "plm_sft_store": a JSON object {"format": "plm-sft-store", "version": 1, "settings": {...},
// "source": ..., counts}. "settings" is everything that decides the bytes (tokenizer fingerprint,
// processor, frame sampling, placeholders per tile); a reader refuses a store whose settings differ from
// its own.
#pragma once

#include <nlohmann/json.hpp>

#include "data/processor_config.h"
#include "data/sft_sample.h"
#include "data/tokenizer.h"

namespace plm::data::sft_store {

inline constexpr char kAttribute[] = "plm_sft_store";
inline constexpr char kFormat[] = "plm-sft-store";
inline constexpr int kVersion = 1;

inline constexpr char kInputIds[] = "input_ids";
inline constexpr char kLabelsAssistant[] = "labels_assistant";
inline constexpr char kLabelsAllButMedia[] = "labels_all_but_media";
inline constexpr char kSampleTokenOffsets[] = "sample_token_offsets";
inline constexpr char kImageTiles[] = "image_tiles";
inline constexpr char kTilesPerImage[] = "tiles_per_image";
inline constexpr char kSampleImageOffsets[] = "sample_image_offsets";
inline constexpr char kVideoFrames[] = "video_frames";
inline constexpr char kFramesPerVideo[] = "frames_per_video";
inline constexpr char kSampleVideoOffsets[] = "sample_video_offsets";

const char* labels_dataset(LabelMode mode);

// What decides a store's bytes: equal settings give equal samples.
nlohmann::json settings(const Tokenizer& tokenizer, const ProcessorConfig& processor, const SftDataConfig& config);

// OK when equal; else an error naming the first differing key with both values.
absl::Status check_settings(const nlohmann::json& stored, const nlohmann::json& current);

}  // namespace plm::data::sft_store
