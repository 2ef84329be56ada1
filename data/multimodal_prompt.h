// From a conversation to model inputs: renders the PLM chat template, tokenizes it, loads and
// preprocesses every image (thumb+tile) and video (sampled frames) it references, and expands each
// placeholder to tokens_per_tile rows per tile or frame (spec/plm_spec.md §3.7). Shared by generate,
// serve and caption.
#pragma once

#include <filesystem>
#include <vector>

#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "data/chat_template.h"
#include "data/image_decode.h"
#include "data/processor_config.h"
#include "data/tokenizer.h"
#include "data/video.h"

namespace plm::data {

struct MediaOptions {
  // Up to 32 frames: HF's integration tests and PLM training use 32; shorter videos give all their frames.
  FrameSampling video_sampling{.num_frames = 32, .at_most = true};
  ImageDecodeLimits image_limits;
  VideoDecodeLimits video_limits;
};

// The frame sampling of the --num-frames / --fps flags (generate, caption): `fps` when > 0; else exactly
// `num_frames` when > 0 (as HF: a shorter video is an error); else the default above (up to 32).
FrameSampling video_sampling_from_flags(int64_t num_frames, double fps);

struct MediaInputs {
  OwnedTensor image_pixels;   // f32 (tiles of every image, 3, tile, tile), images in prompt order; or empty
  OwnedTensor video_pixels;   // f32 (frames of every video, 3, h, w); or empty
  std::vector<int64_t> tiles_per_image, frames_per_video;
};

struct PromptInputs : MediaInputs {
  std::vector<int32_t> ids;   // placeholders expanded
};

// Media references are local paths or file:// URLs (remote URLs are refused: plm never downloads).
// Errors name the media item and the problem.
absl::StatusOr<PromptInputs> build_prompt(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                                          const Tokenizer& tokenizer, const ProcessorConfig& processor,
                                          int tokens_per_tile, const MediaOptions& options = {});

// The local file a media part names: its path, or a file:// URL's path (relative paths stay relative).
// Remote and data: URLs are an error.
absl::StatusOr<std::filesystem::path> media_file_path(const ContentPart& part);

// The two halves of build_prompt. load_media decodes and preprocesses every image and video of `messages`
// in prompt order (errors as above); expand_media_placeholders repeats the i-th <|image|> (<|video|>) of
// `ids` tokens_per_tile times per tile (frame) of the i-th image (video).
absl::StatusOr<MediaInputs> load_media(const std::vector<ChatMessage>& messages, const ProcessorConfig& processor,
                                       const MediaOptions& options);
absl::StatusOr<std::vector<int32_t>> expand_media_placeholders(const std::vector<int32_t>& ids,
                                                               const Tokenizer& tokenizer, const MediaInputs& media,
                                                               int tokens_per_tile);

}  // namespace plm::data
