#include "data/multimodal_prompt.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace plm::data {

namespace {

// media_file_path with the item named in the error.
absl::StatusOr<std::filesystem::path> local_path(const ContentPart& part, const char* kind, size_t index) {
  absl::StatusOr<std::filesystem::path> path = media_file_path(part);
  if (!path.ok()) return absl::Status(path.status().code(), absl::StrCat(kind, " ", index, ": ", path.status().message()));
  return path;
}

// Stacks (n_i, ...) tensors along dim 0.
OwnedTensor concat_rows(std::vector<OwnedTensor>& parts) {
  if (parts.empty()) return OwnedTensor();
  if (parts.size() == 1) return std::move(parts[0]);
  int64_t rows = 0;
  for (const OwnedTensor& p : parts) rows += p.size(0);
  Shape shape = parts[0].shape();
  shape[0] = rows;
  OwnedTensor out(shape, parts[0].dtype());
  int64_t at = 0;
  for (const OwnedTensor& p : parts) {
    copy_tensor(out.view().slice(0, at, at + p.size(0)), p);
    at += p.size(0);
  }
  return out;
}

}  // namespace

FrameSampling video_sampling_from_flags(int64_t num_frames, double fps) {
  if (fps > 0) return {.num_frames = std::nullopt, .fps = fps};
  if (num_frames > 0) return {.num_frames = num_frames};
  return MediaOptions{}.video_sampling;
}

absl::StatusOr<std::filesystem::path> media_file_path(const ContentPart& part) {
  std::string url = part.url;
  if (url.empty()) return absl::InvalidArgumentError("no path or URL given");
  if (absl::StartsWith(url, "file://")) url = url.substr(7);
  if (absl::StrContains(url, "://") || absl::StartsWith(url, "data:")) {
    return absl::InvalidArgumentError(
        absl::StrCat(part.url.substr(0, 64), ": only local files are read; plm does not fetch URLs"));
  }
  return std::filesystem::path(url);
}

absl::StatusOr<MediaInputs> load_media(const std::vector<ChatMessage>& messages, const ProcessorConfig& processor,
                                       const MediaOptions& options) {
  MediaInputs media;
  std::vector<OwnedTensor> images, videos;
  const auto image_parts = media_parts(messages, ContentPart::Type::kImage);
  for (size_t i = 0; i < image_parts.size(); ++i) {
    PLM_ASSIGN_OR_RETURN(const std::filesystem::path path, local_path(*image_parts[i], "image", i));
    absl::StatusOr<ProcessedImage> image = load_and_process_image(path, processor.image, options.image_limits);
    if (!image.ok()) return image.status();
    media.tiles_per_image.push_back(image->pixel_values.size(0));
    images.push_back(std::move(image->pixel_values));
  }
  const auto video_parts = media_parts(messages, ContentPart::Type::kVideo);
  for (size_t i = 0; i < video_parts.size(); ++i) {
    PLM_ASSIGN_OR_RETURN(const std::filesystem::path path, local_path(*video_parts[i], "video", i));
    absl::StatusOr<ProcessedVideo> video =
        load_and_process_video(path, options.video_sampling, processor.video, options.video_limits);
    if (!video.ok()) return video.status();
    media.frames_per_video.push_back(video->pixel_values.size(0));
    videos.push_back(std::move(video->pixel_values));
  }
  media.image_pixels = concat_rows(images);
  media.video_pixels = concat_rows(videos);
  return media;
}

absl::StatusOr<std::vector<int32_t>> expand_media_placeholders(const std::vector<int32_t>& ids,
                                                               const Tokenizer& tokenizer, const MediaInputs& media,
                                                               int tokens_per_tile) {
  const auto rows = [&](const std::vector<int64_t>& counts) {
    std::vector<int64_t> out;
    for (int64_t c : counts) out.push_back(c * tokens_per_tile);
    return out;
  };
  const std::optional<int32_t> image_id = tokenizer.special_token_id("<|image|>");
  const std::optional<int32_t> video_id = tokenizer.special_token_id("<|video|>");
  if (!image_id || !video_id) return absl::FailedPreconditionError("the tokenizer has no <|image|> / <|video|> token");
  PLM_ASSIGN_OR_RETURN(std::vector<int32_t> with_images, expand_placeholders(ids, *image_id, rows(media.tiles_per_image)));
  return expand_placeholders(with_images, *video_id, rows(media.frames_per_video));
}

absl::StatusOr<PromptInputs> build_prompt(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                                          const Tokenizer& tokenizer, const ProcessorConfig& processor,
                                          int tokens_per_tile, const MediaOptions& options) {
  PromptInputs inputs;
  PLM_ASSIGN_OR_RETURN(static_cast<MediaInputs&>(inputs), load_media(messages, processor, options));
  const std::string text = render_chat_prompt(messages, add_generation_prompt);
  // The template writes <|begin_of_text|> itself: no second BOS.
  const std::vector<int32_t> ids = tokenizer.encode(text, {.allow_special = true, .add_bos = false});
  PLM_ASSIGN_OR_RETURN(inputs.ids, expand_media_placeholders(ids, tokenizer, inputs, tokens_per_tile));
  return inputs;
}

}  // namespace plm::data
