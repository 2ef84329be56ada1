#include "data/sft_store_format.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace plm::data::sft_store {
namespace {

using nlohmann::json;

json normalisation(double rescale_factor, const std::array<float, 3>& mean, const std::array<float, 3>& std) {
  return {{"rescale_factor", rescale_factor}, {"image_mean", mean}, {"image_std", std}};
}

// Walks both objects in the key order of `current`; a key only one side has counts as a difference.
absl::Status first_difference(const json& stored, const json& current, const std::string& path) {
  if (stored.is_object() && current.is_object()) {
    for (const auto& [key, value] : current.items()) {
      const json missing;
      const std::string child = path.empty() ? key : absl::StrCat(path, ".", key);
      absl::Status s = first_difference(stored.contains(key) ? stored[key] : missing, value, child);
      if (!s.ok()) return s;
    }
    for (const auto& [key, value] : stored.items()) {
      if (!current.contains(key)) {
        return absl::FailedPreconditionError(absl::StrCat(path.empty() ? key : absl::StrCat(path, ".", key), " is ",
                                                          value.dump(), " in the store but unknown here"));
      }
    }
    return absl::OkStatus();
  }
  if (stored == current) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat(path, " is ", stored.dump(), " in the store but ", current.dump(), " here"));
}

}  // namespace

const char* labels_dataset(LabelMode mode) {
  switch (mode) {
    case LabelMode::kAssistant: return kLabelsAssistant;
    case LabelMode::kAllButMedia: return kLabelsAllButMedia;
  }
  return "";
}

json settings(const Tokenizer& tokenizer, const ProcessorConfig& processor, const SftDataConfig& config) {
  const ImageProcessorConfig& image = processor.image;
  const VideoProcessorConfig& video = processor.video;
  const FrameSampling& sampling = config.media.video_sampling;
  return {
      {"tokenizer_fingerprint", absl::StrFormat("%016x", tokenizer.vocab().fingerprint())},
      {"image_tokens_per_tile", processor.image_tokens_per_tile()},
      {"video_tokens_per_frame", processor.video_tokens_per_frame()},
      {"image",
       {{"vision_input_type", image.vision_input_type == VisionInputType::kThumbTile ? "thumb+tile" : "vanilla"},
        {"tile_size", image.tile_size},
        {"max_num_tiles", image.max_num_tiles},
        {"normalisation", normalisation(image.rescale_factor, image.image_mean, image.image_std)}}},
      {"video",
       {{"height", video.height},
        {"width", video.width},
        {"normalisation", normalisation(video.rescale_factor, video.image_mean, video.image_std)}}},
      {"video_sampling",
       {{"num_frames", sampling.num_frames ? json(*sampling.num_frames) : json()},
        {"fps", sampling.fps ? json(*sampling.fps) : json()},
        {"at_most", sampling.at_most}}},
  };
}

absl::Status check_settings(const json& stored, const json& current) { return first_difference(stored, current, ""); }

}  // namespace plm::data::sft_store
