// Reads a sample store written by `plm data pack` (data/sft_store_format.h) as an SftDataset: ids and the
// configured label mask from the token datasets, tiles/frames from their u8 levels through the processor's
// normaliser, so every sample equals the JSONL path's bit for bit. Opening checks the format, that the
// store was made with this tokenizer, processor and frame sampling (else an error naming the setting),
// and that the offsets are consistent; a truncated or corrupt file is an error naming it, and a corrupt
// chunk fails its checksum when read. Thread safety: as SftDataset (HDF5 reads are serialised).
#pragma once

#include <filesystem>
#include <memory>
#include <vector>

#include "data/hdf5_file.h"
#include "data/image_processor.h"
#include "data/sft_dataset.h"

namespace plm::data {

class SftStoreDataset final : public SftDataset {
 public:
  static absl::StatusOr<std::unique_ptr<SftStoreDataset>> open(const std::filesystem::path& path,
                                                               const Tokenizer& tokenizer,
                                                               const ProcessorConfig& processor,
                                                               const SftDataConfig& config);

  int64_t size() const override { return static_cast<int64_t>(token_offsets_.size()) - 1; }
  absl::StatusOr<SftSample> sample(int64_t index) const override;
  absl::StatusOr<SampleExtent> extent(int64_t index) const override;
  std::string location(int64_t index) const override;

 private:
  // Item k of a media kind covers pixel rows [row_starts[k], row_starts[k + 1]).
  struct MediaIndex {
    std::vector<int64_t> sample_items;   // (N + 1) sample i has items [sample_items[i], sample_items[i + 1])
    std::vector<int64_t> rows_per_item;  // tiles per image or frames per video
    std::vector<int64_t> row_starts;     // (items + 1) prefix sums of rows_per_item
  };
  struct Store {
    hdf5::File file;
    hdf5::Dataset ids;     // int32 (T)
    hdf5::Dataset labels;  // uint8 (T), the configured label mode
    hdf5::Dataset tiles;   // uint8 (tiles, 3, t, t)
    hdf5::Dataset frames;  // uint8 (frames, 3, h, w)
  };

  SftStoreDataset(Store store, std::vector<int64_t> token_offsets, MediaIndex images, MediaIndex videos,
                  const ProcessorConfig& processor, const SftDataConfig& config);

  // The f32 pixels of sample `sample`'s items (empty when it has none); *counts gets the rows per item.
  absl::StatusOr<OwnedTensor> read_pixels(const hdf5::Dataset& rows, const MediaIndex& index, int64_t sample,
                                          const PixelNormalizer& normalizer, std::vector<int64_t>* counts) const;

  Store store_;
  std::vector<int64_t> token_offsets_;  // (N + 1)
  MediaIndex images_, videos_;
  PixelNormalizer image_normalizer_, video_normalizer_;
  SftDataConfig config_;
};

}  // namespace plm::data
