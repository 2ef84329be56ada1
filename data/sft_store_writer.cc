#include "data/sft_store_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "data/pixel_levels.h"
#include "data/sft_jsonl.h"
#include "data/sft_store_format.h"

namespace plm::data {
namespace {

using hdf5::Dataset;
using hdf5::Element;

constexpr int64_t kTokenChunk = 1 << 16;

// u8 levels of f32 pixels, checked to rebuild the exact f32 bits before they are stored.
absl::StatusOr<std::vector<uint8_t>> exact_levels(const OwnedTensor& pixels, const PixelNormalizer& normalizer,
                                                  const char* what) {
  absl::StatusOr<std::vector<uint8_t>> levels = pixels_to_levels(pixels, normalizer);
  if (!levels.ok()) return absl::Status(levels.status().code(), absl::StrCat(what, ": ", levels.status().message()));
  const OwnedTensor rebuilt(pixels.shape(), DType::kF32);
  levels_to_pixels(levels->data(), rebuilt, normalizer);
  if (std::memcmp(rebuilt.data_as<float>(), pixels.data_as<float>(), pixels.view().nbytes()) != 0) {
    return absl::InternalError(absl::StrCat(what, ": u8 levels do not rebuild the preprocessed pixels exactly"));
  }
  return levels;
}

absl::Status fsync_path(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0 || ::fsync(fd) != 0) {
    const std::string reason = std::strerror(errno);
    if (fd >= 0) ::close(fd);
    return absl::DataLossError(absl::StrCat(path.string(), ": fsync failed: ", reason));
  }
  ::close(fd);
  return absl::OkStatus();
}

// The open store: datasets that grow per sample and the offsets written at the end.
class StoreWriter {
 public:
  static absl::StatusOr<StoreWriter> create(const std::filesystem::path& path, const ProcessorConfig& processor,
                                            const hdf5::Compression& compression) {
    PLM_ASSIGN_OR_RETURN(hdf5::File file, hdf5::File::create(path));
    const int64_t tile = processor.image.tile_size;
    const std::vector<int64_t> tile_row{kRgbChannels, tile, tile};
    const std::vector<int64_t> frame_row{kRgbChannels, processor.video.height, processor.video.width};
    PLM_ASSIGN_OR_RETURN(Dataset ids, Dataset::create(file, sft_store::kInputIds, Element::kI32, {}, kTokenChunk, compression));
    PLM_ASSIGN_OR_RETURN(Dataset assistant, Dataset::create(file, sft_store::kLabelsAssistant, Element::kU8, {},
                                                            kTokenChunk, compression));
    PLM_ASSIGN_OR_RETURN(Dataset all_but_media, Dataset::create(file, sft_store::kLabelsAllButMedia, Element::kU8, {},
                                                                kTokenChunk, compression));
    PLM_ASSIGN_OR_RETURN(Dataset tiles, Dataset::create(file, sft_store::kImageTiles, Element::kU8, tile_row, 1, compression));
    PLM_ASSIGN_OR_RETURN(Dataset frames, Dataset::create(file, sft_store::kVideoFrames, Element::kU8, frame_row, 1, compression));
    return StoreWriter(std::move(file), std::move(ids), std::move(assistant), std::move(all_but_media),
                       std::move(tiles), std::move(frames), processor, compression);
  }

  absl::Status add(const SftExample& example, const std::string& location) {
    const int64_t length = static_cast<int64_t>(example.ids.size());
    PLM_RETURN_IF_ERROR(ids_.append(example.ids.data(), length));
    PLM_RETURN_IF_ERROR(assistant_.append(example.assistant_mask.data(), length));
    PLM_RETURN_IF_ERROR(all_but_media_.append(example.all_but_media_mask.data(), length));
    if (example.image_pixels.view().defined()) {
      PLM_ASSIGN_OR_RETURN(const std::vector<uint8_t> levels,
                           exact_levels(example.image_pixels, image_normalizer_, location.c_str()));
      PLM_RETURN_IF_ERROR(tiles_.append(levels.data(), example.image_pixels.size(0)));
    }
    if (example.video_pixels.view().defined()) {
      PLM_ASSIGN_OR_RETURN(const std::vector<uint8_t> levels,
                           exact_levels(example.video_pixels, video_normalizer_, location.c_str()));
      PLM_RETURN_IF_ERROR(frames_.append(levels.data(), example.video_pixels.size(0)));
    }
    tiles_per_image_.insert(tiles_per_image_.end(), example.tiles_per_image.begin(), example.tiles_per_image.end());
    frames_per_video_.insert(frames_per_video_.end(), example.frames_per_video.begin(), example.frames_per_video.end());
    token_offsets_.push_back(ids_.rows());
    image_offsets_.push_back(static_cast<int64_t>(tiles_per_image_.size()));
    video_offsets_.push_back(static_cast<int64_t>(frames_per_video_.size()));
    summary_.num_labelled_assistant +=
        std::accumulate(example.assistant_mask.begin(), example.assistant_mask.end(), int64_t{0});
    return absl::OkStatus();
  }

  // Writes the offsets and metadata and closes every object, the file last.
  absl::StatusOr<PackSummary> finish(nlohmann::json metadata) {
    for (const auto& [name, values] : {std::pair{sft_store::kTilesPerImage, &tiles_per_image_},
                                       std::pair{sft_store::kFramesPerVideo, &frames_per_video_},
                                       std::pair{sft_store::kSampleTokenOffsets, &token_offsets_},
                                       std::pair{sft_store::kSampleImageOffsets, &image_offsets_},
                                       std::pair{sft_store::kSampleVideoOffsets, &video_offsets_}}) {
      PLM_RETURN_IF_ERROR(hdf5::write_i64_vector(file_, name, *values, compression_));
    }
    summary_.num_samples = static_cast<int64_t>(token_offsets_.size()) - 1;
    summary_.num_tokens = ids_.rows();
    summary_.num_image_tiles = tiles_.rows();
    summary_.num_video_frames = frames_.rows();
    metadata["samples"] = summary_.num_samples;
    metadata["tokens"] = summary_.num_tokens;
    metadata["image_tiles"] = summary_.num_image_tiles;
    metadata["video_frames"] = summary_.num_video_frames;
    PLM_RETURN_IF_ERROR(file_.write_json_attribute(sft_store::kAttribute, metadata.dump()));
    for (Dataset* d : {&ids_, &assistant_, &all_but_media_, &tiles_, &frames_}) PLM_RETURN_IF_ERROR(d->close());
    PLM_RETURN_IF_ERROR(file_.close());
    return summary_;
  }

 private:
  StoreWriter(hdf5::File file, Dataset ids, Dataset assistant, Dataset all_but_media, Dataset tiles, Dataset frames,
              const ProcessorConfig& processor, const hdf5::Compression& compression)
      : file_(std::move(file)), ids_(std::move(ids)), assistant_(std::move(assistant)),
        all_but_media_(std::move(all_but_media)), tiles_(std::move(tiles)), frames_(std::move(frames)),
        image_normalizer_(processor.image.rescale_factor, processor.image.image_mean, processor.image.image_std),
        video_normalizer_(processor.video.rescale_factor, processor.video.image_mean, processor.video.image_std),
        compression_(compression) {}

  hdf5::File file_;
  Dataset ids_, assistant_, all_but_media_, tiles_, frames_;
  PixelNormalizer image_normalizer_, video_normalizer_;
  hdf5::Compression compression_;
  std::vector<int64_t> tiles_per_image_, frames_per_video_;
  std::vector<int64_t> token_offsets_{0}, image_offsets_{0}, video_offsets_{0};
  PackSummary summary_;
};

absl::Status write_store(const SftJsonlDataset& source, const std::filesystem::path& path, const Tokenizer& tokenizer,
                         const ProcessorConfig& processor, const SftDataConfig& config, const PackOptions& options,
                         PackSummary* summary) {
  PLM_ASSIGN_OR_RETURN(StoreWriter writer, StoreWriter::create(path, processor, options.compression));
  for (int64_t i = 0; i < source.size(); ++i) {
    PLM_ASSIGN_OR_RETURN(const SftExample example, source.example(i));
    PLM_RETURN_IF_ERROR(writer.add(example, source.location(i)));
    if (options.progress) options.progress(i + 1, source.size());
  }
  std::error_code error;
  const std::filesystem::path absolute = std::filesystem::absolute(source.path(), error);
  const nlohmann::json metadata = {
      {"format", sft_store::kFormat},
      {"version", sft_store::kVersion},
      {"settings", sft_store::settings(tokenizer, processor, config)},
      {"source", error ? source.path().string() : absolute.string()},
      {"max_tokens", config.max_tokens ? nlohmann::json(*config.max_tokens) : nlohmann::json()},
      {"label_modes", {label_mode_name(LabelMode::kAssistant), label_mode_name(LabelMode::kAllButMedia)}},
  };
  PLM_ASSIGN_OR_RETURN(*summary, writer.finish(metadata));
  return fsync_path(path);
}

}  // namespace

absl::StatusOr<PackSummary> pack_sft_store(const std::filesystem::path& jsonl, const std::filesystem::path& out,
                                           const Tokenizer& tokenizer, const ProcessorConfig& processor,
                                           const SftDataConfig& config, const PackOptions& options) {
  PLM_ASSIGN_OR_RETURN(const std::unique_ptr<SftJsonlDataset> source,
                       SftJsonlDataset::open(jsonl, tokenizer, processor, config));
  const std::filesystem::path temp = absl::StrCat(out.string(), ".tmp-", ::getpid());
  PackSummary summary;
  absl::Status status = write_store(*source, temp, tokenizer, processor, config, options, &summary);
  std::error_code error;
  if (status.ok()) {
    std::filesystem::rename(temp, out, error);
    if (error) status = absl::PermissionDeniedError(absl::StrCat(out.string(), ": cannot rename ", temp.string(), " to it: ", error.message()));
  }
  if (!status.ok()) {
    std::filesystem::remove(temp, error);
    return status;
  }
  const std::filesystem::path directory = out.has_parent_path() ? out.parent_path() : std::filesystem::path(".");
  PLM_RETURN_IF_ERROR(fsync_path(directory));  // the rename itself
  summary.file_bytes = static_cast<int64_t>(std::filesystem::file_size(out, error));
  return summary;
}

}  // namespace plm::data
