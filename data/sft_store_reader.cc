#include "data/sft_store_reader.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "core/status_macros.h"
#include "data/pixel_levels.h"
#include "data/sft_store_format.h"

namespace plm::data {
namespace {

using hdf5::Dataset;
using hdf5::Element;

// offsets must run from 0 to `end` without going back.
bool valid_offsets(const std::vector<int64_t>& offsets, int64_t end) {
  return !offsets.empty() && offsets.front() == 0 && offsets.back() == end &&
         std::is_sorted(offsets.begin(), offsets.end());
}

}  // namespace

SftStoreDataset::SftStoreDataset(Store store, std::vector<int64_t> token_offsets, MediaIndex images,
                                 MediaIndex videos, const ProcessorConfig& processor, const SftDataConfig& config)
    : store_(std::move(store)), token_offsets_(std::move(token_offsets)), images_(std::move(images)),
      videos_(std::move(videos)),
      image_normalizer_(processor.image.rescale_factor, processor.image.image_mean, processor.image.image_std),
      video_normalizer_(processor.video.rescale_factor, processor.video.image_mean, processor.video.image_std),
      config_(config) {}

absl::StatusOr<std::unique_ptr<SftStoreDataset>> SftStoreDataset::open(const std::filesystem::path& path,
                                                                       const Tokenizer& tokenizer,
                                                                       const ProcessorConfig& processor,
                                                                       const SftDataConfig& config) {
  PLM_ASSIGN_OR_RETURN(hdf5::File file, hdf5::File::open_read(path));
  const std::string name = path.string();
  PLM_ASSIGN_OR_RETURN(const std::string metadata_text, file.read_json_attribute(sft_store::kAttribute));
  const nlohmann::json metadata = nlohmann::json::parse(metadata_text, nullptr, /*allow_exceptions=*/false);
  const auto has = [&](const char* key, nlohmann::json::value_t type) {
    return metadata.contains(key) && metadata[key].type() == type;
  };
  if (metadata.is_discarded() || !metadata.is_object() || !has("format", nlohmann::json::value_t::string) ||
      metadata["format"] != sft_store::kFormat || !has("version", nlohmann::json::value_t::number_unsigned) ||
      !has("samples", nlohmann::json::value_t::number_unsigned) || !metadata.contains("settings")) {
    return absl::DataLossError(absl::StrCat(name, ": attribute ", sft_store::kAttribute, " is not a plm SFT store header"));
  }
  if (metadata["version"] != sft_store::kVersion) {
    return absl::FailedPreconditionError(absl::StrCat(name, ": store version ", metadata["version"].dump(),
                                                      ", this plm reads version ", sft_store::kVersion));
  }
  if (absl::Status s = sft_store::check_settings(metadata["settings"], sft_store::settings(tokenizer, processor, config));
      !s.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(name, ": packed with other settings: ", s.message(), "; run plm data pack again"));
  }

  const int64_t tile = processor.image.tile_size;
  PLM_ASSIGN_OR_RETURN(Dataset ids, Dataset::open(file, sft_store::kInputIds, Element::kI32, {}));
  PLM_ASSIGN_OR_RETURN(Dataset labels, Dataset::open(file, sft_store::labels_dataset(config.labels), Element::kU8, {}));
  PLM_ASSIGN_OR_RETURN(Dataset tiles, Dataset::open(file, sft_store::kImageTiles, Element::kU8, {kRgbChannels, tile, tile}));
  PLM_ASSIGN_OR_RETURN(Dataset frames, Dataset::open(file, sft_store::kVideoFrames, Element::kU8,
                                                     {kRgbChannels, processor.video.height, processor.video.width}));
  PLM_ASSIGN_OR_RETURN(std::vector<int64_t> token_offsets, hdf5::read_i64_vector(file, sft_store::kSampleTokenOffsets));
  MediaIndex images, videos;
  PLM_ASSIGN_OR_RETURN(images.sample_items, hdf5::read_i64_vector(file, sft_store::kSampleImageOffsets));
  PLM_ASSIGN_OR_RETURN(images.rows_per_item, hdf5::read_i64_vector(file, sft_store::kTilesPerImage));
  PLM_ASSIGN_OR_RETURN(videos.sample_items, hdf5::read_i64_vector(file, sft_store::kSampleVideoOffsets));
  PLM_ASSIGN_OR_RETURN(videos.rows_per_item, hdf5::read_i64_vector(file, sft_store::kFramesPerVideo));

  const auto inconsistent = [&](const std::string& what) {
    return absl::DataLossError(absl::StrCat(name, ": ", what, " (corrupt store)"));
  };
  if (token_offsets.size() < 2 || !valid_offsets(token_offsets, ids.rows()) || labels.rows() != ids.rows()) {
    return inconsistent("the token offsets do not cover input_ids and the label masks");
  }
  for (auto [index, rows, what] : {std::tuple{&images, &tiles, "image"}, std::tuple{&videos, &frames, "video"}}) {
    index->row_starts.assign(1, 0);
    for (int64_t count : index->rows_per_item) {
      if (count <= 0) return inconsistent(absl::StrCat("a ", what, " with ", count, " rows"));
      index->row_starts.push_back(index->row_starts.back() + count);
    }
    if (index->sample_items.size() != token_offsets.size() ||
        !valid_offsets(index->sample_items, static_cast<int64_t>(index->rows_per_item.size())) ||
        index->row_starts.back() != rows->rows()) {
      return inconsistent(absl::StrCat("the ", what, " offsets do not match the sample count and pixel rows"));
    }
  }
  if (metadata["samples"].get<int64_t>() != static_cast<int64_t>(token_offsets.size()) - 1) {
    return inconsistent("the header's sample count differs from the offsets");
  }
  Store store{std::move(file), std::move(ids), std::move(labels), std::move(tiles), std::move(frames)};
  return std::unique_ptr<SftStoreDataset>(new SftStoreDataset(std::move(store), std::move(token_offsets),
                                                              std::move(images), std::move(videos), processor, config));
}

std::string SftStoreDataset::location(int64_t index) const {
  PLM_CHECK(index >= 0 && index < size()) << index << " of " << size();
  return absl::StrCat(store_.file.name(), " sample ", index);
}

absl::StatusOr<OwnedTensor> SftStoreDataset::read_pixels(const Dataset& rows, const MediaIndex& index, int64_t sample,
                                                         const PixelNormalizer& normalizer,
                                                         std::vector<int64_t>* counts) const {
  const int64_t first = index.sample_items[sample], last = index.sample_items[sample + 1];
  counts->assign(index.rows_per_item.begin() + first, index.rows_per_item.begin() + last);
  if (first == last) return OwnedTensor();
  const int64_t begin = index.row_starts[first], end = index.row_starts[last];
  PLM_ASSIGN_OR_RETURN(const std::vector<hdf5::StoredChunk> chunks, rows.read_chunks(begin, end));
  Shape shape{end - begin};
  for (int64_t d : rows.row_shape()) shape.push_back(d);
  OwnedTensor pixels(shape, DType::kF32);
  std::vector<absl::Status> errors(chunks.size());
  // Tiles decode in parallel: the HDF5 lock covered only the reads above.
#pragma omp parallel for schedule(dynamic)
  for (int64_t i = 0; i < end - begin; ++i) {
    std::vector<uint8_t> levels(static_cast<size_t>(rows.row_elements()));
    errors[i] = rows.decode_chunk(chunks[i], begin + i, levels.data());
    if (!errors[i].ok()) continue;
    levels_to_pixels(levels.data(), pixels.view().slice(0, i, i + 1), normalizer);
  }
  for (const absl::Status& error : errors) PLM_RETURN_IF_ERROR(error);
  return pixels;
}

absl::StatusOr<SftSample> SftStoreDataset::sample(int64_t index) const {
  PLM_CHECK(index >= 0 && index < size()) << index << " of " << size();
  const auto at = [&](const absl::Status& s) { return absl::Status(s.code(), absl::StrCat(location(index), ": ", s.message())); };
  const int64_t begin = token_offsets_[index], end = token_offsets_[index + 1];
  if (config_.max_tokens && end - begin > *config_.max_tokens) {
    return at(absl::InvalidArgumentError(absl::StrCat(end - begin, " tokens exceed max_tokens ", *config_.max_tokens)));
  }
  SftSample sample;
  sample.ids.resize(static_cast<size_t>(end - begin));
  sample.label_mask.resize(static_cast<size_t>(end - begin));
  for (auto [dataset, out] : {std::pair<const Dataset*, void*>{&store_.ids, sample.ids.data()},
                              std::pair<const Dataset*, void*>{&store_.labels, sample.label_mask.data()}}) {
    if (absl::Status s = dataset->read(begin, end, out); !s.ok()) return at(s);
  }
  absl::StatusOr<OwnedTensor> images = read_pixels(store_.tiles, images_, index, image_normalizer_, &sample.tiles_per_image);
  if (!images.ok()) return at(images.status());
  absl::StatusOr<OwnedTensor> videos = read_pixels(store_.frames, videos_, index, video_normalizer_, &sample.frames_per_video);
  if (!videos.ok()) return at(videos.status());
  sample.image_pixels = *std::move(images);
  sample.video_pixels = *std::move(videos);
  return sample;
}

absl::StatusOr<SampleExtent> SftStoreDataset::extent(int64_t index) const {
  PLM_CHECK(index >= 0 && index < size()) << index << " of " << size();
  const auto rows = [&](const MediaIndex& m) { return m.row_starts[m.sample_items[index + 1]] - m.row_starts[m.sample_items[index]]; };
  return SampleExtent{token_offsets_[index + 1] - token_offsets_[index], rows(images_) + rows(videos_)};
}

}  // namespace plm::data
