// The sample store: packing then reading gives the JSONL path's samples bit for bit in both label modes;
// stores made with other settings, truncated files and corrupt chunks are errors naming the file; a failed
// pack leaves nothing behind; u8 levels rebuild the preprocessed pixels exactly.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "data/pixel_levels.h"
#include "data/sft_jsonl.h"
#include "data/sft_store_reader.h"
#include "data/sft_store_writer.h"
#include "tests/data/sft_test_util.h"
#include "tests/data/tokenizer_test_util.h"

namespace plm::data {
namespace {

using plm::testing::llama3_tokenizer;
using plm::testing::make_sft_dir;
using plm::testing::tiny_processor;

const std::vector<std::string>& mixed_lines() {
  static const std::vector<std::string> lines = {
      R"({"messages": [{"role": "system", "content": "Terse."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]})",
      R"({"messages": [{"role": "user", "content": [{"type": "image", "path": "media/image.png"}, {"type": "text", "text": "What is it?"}]}, {"role": "assistant", "content": "A picture."}, {"role": "user", "content": "Sure?"}, {"role": "assistant", "content": "Yes."}]})",
      R"({"messages": [{"role": "user", "content": [{"type": "video", "path": "media/clip.mp4"}, {"type": "text", "text": "What happens?"}]}, {"role": "assistant", "content": "Motion."}]})",
      R"({"messages": [{"role": "user", "content": [{"type": "image", "path": "media/image.png"}, {"type": "image", "path": "media/image.png"}, {"type": "video", "path": "media/clip.mp4"}]}, {"role": "assistant", "content": "Two images and a clip."}]})",
  };
  return lines;
}

void expect_same_tensor(const OwnedTensor& a, const OwnedTensor& b, const std::string& what) {
  ASSERT_EQ(a.view().defined(), b.view().defined()) << what;
  if (!a.view().defined()) return;
  ASSERT_EQ(a.shape(), b.shape()) << what;
  ASSERT_EQ(a.dtype(), b.dtype()) << what;
  EXPECT_EQ(std::memcmp(a.view().data(), b.view().data(), a.view().nbytes()), 0) << what;
}

void expect_same_sample(const SftSample& a, const SftSample& b, const std::string& what) {
  EXPECT_EQ(a.ids, b.ids) << what;
  EXPECT_EQ(a.label_mask, b.label_mask) << what;
  EXPECT_EQ(a.tiles_per_image, b.tiles_per_image) << what;
  EXPECT_EQ(a.frames_per_video, b.frames_per_video) << what;
  expect_same_tensor(a.image_pixels, b.image_pixels, what + " image pixels");
  expect_same_tensor(a.video_pixels, b.video_pixels, what + " video pixels");
}

absl::StatusOr<PackSummary> pack(const std::filesystem::path& dir, const SftDataConfig& config = {},
                                  const std::string& store = "train.h5", int deflate_level = 1) {
  PackOptions options;
  options.compression.deflate_level = deflate_level;
  return pack_sft_store(dir / "train.jsonl", dir / store, llama3_tokenizer(), tiny_processor(), config, options);
}

TEST(SftStore, PackedSamplesEqualTheJsonlSamplesBitForBit) {
  const std::filesystem::path dir = make_sft_dir("sft_store_equal", mixed_lines());
  absl::StatusOr<PackSummary> summary = pack(dir);
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->num_samples, 4);
  EXPECT_EQ(summary->num_video_frames, 8);
  EXPECT_GT(summary->file_bytes, 0);
  EXPECT_FALSE(std::filesystem::exists(dir / absl::StrCat("train.h5.tmp-", ::getpid())));
  ASSERT_TRUE(pack(dir, {}, "plain.h5", /*deflate_level=*/0).ok());  // checksum and shuffle only

  for (const auto& [mode, store_name] : {std::pair{LabelMode::kAssistant, "train.h5"},
                                         std::pair{LabelMode::kAllButMedia, "train.h5"},
                                         std::pair{LabelMode::kAssistant, "plain.h5"}}) {
    SCOPED_TRACE(store_name);
    SftDataConfig config;
    config.labels = mode;
    absl::StatusOr<std::unique_ptr<SftDataset>> jsonl =
        open_sft_dataset(dir / "train.jsonl", llama3_tokenizer(), tiny_processor(), config);
    absl::StatusOr<std::unique_ptr<SftDataset>> store =
        open_sft_dataset(dir / store_name, llama3_tokenizer(), tiny_processor(), config);
    ASSERT_TRUE(jsonl.ok()) << jsonl.status();
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_EQ((*store)->size(), 4);
    int64_t tokens = 0, tiles = 0;
    for (int64_t i = 0; i < 4; ++i) {
      absl::StatusOr<SftSample> a = (*jsonl)->sample(i), b = (*store)->sample(i);
      ASSERT_TRUE(a.ok()) << a.status();
      ASSERT_TRUE(b.ok()) << b.status();
      expect_same_sample(*a, *b, absl::StrCat(label_mode_name(mode), " sample ", i));
      const SampleExtent extent = *(*store)->extent(i);
      EXPECT_EQ(extent.num_tokens, static_cast<int64_t>(a->ids.size()));
      EXPECT_EQ(extent.num_vision_tiles, a->num_vision_tiles());
      tokens += extent.num_tokens;
      tiles += extent.num_vision_tiles;
    }
    EXPECT_EQ(tokens, summary->num_tokens);
    EXPECT_EQ(tiles, summary->num_image_tiles + summary->num_video_frames);
    EXPECT_EQ((*store)->location(2), (dir / store_name).string() + " sample 2");
  }
}

TEST(SftStore, RefusesAStoreMadeWithOtherSettings) {
  const std::filesystem::path dir = make_sft_dir("sft_store_settings", {mixed_lines()[1]});
  ASSERT_TRUE(pack(dir).ok());
  ProcessorConfig other = tiny_processor();
  other.image.max_num_tiles = 2;
  absl::StatusOr<std::unique_ptr<SftStoreDataset>> store =
      SftStoreDataset::open(dir / "train.h5", llama3_tokenizer(), other, {});
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("image.max_num_tiles is 4 in the store but 2 here"), std::string::npos)
      << store.status();
  SftDataConfig frames;
  frames.media.video_sampling = {.num_frames = 2, .at_most = true};  // the store's: up to 32
  store = SftStoreDataset::open(dir / "train.h5", llama3_tokenizer(), tiny_processor(), frames);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("video_sampling.num_frames is 32 in the store but 2 here"), std::string::npos)
      << store.status();
  EXPECT_NE(store.status().message().find("train.h5: packed with other settings"), std::string::npos);
}

TEST(SftStore, TruncatedOrCorruptFilesAreErrorsNamingTheFile) {
  const std::filesystem::path dir = make_sft_dir("sft_store_corrupt", mixed_lines());
  ASSERT_TRUE(pack(dir).ok());
  const std::filesystem::path truncated = dir / "truncated.h5";
  std::filesystem::copy_file(dir / "train.h5", truncated);
  std::filesystem::resize_file(truncated, std::filesystem::file_size(truncated) / 2);
  absl::StatusOr<std::unique_ptr<SftStoreDataset>> store =
      SftStoreDataset::open(truncated, llama3_tokenizer(), tiny_processor(), {});
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find(truncated.string() + ": not a readable HDF5 file"), std::string::npos)
      << store.status();

  // Flip one byte inside the stored chunk of the second image tile: its checksum fails when read.
  const std::filesystem::path corrupt = dir / "corrupt.h5";
  std::filesystem::copy_file(dir / "train.h5", corrupt);
  haddr_t address = 0;
  {
    const hid_t file = H5Fopen(corrupt.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    const hid_t dataset = H5Dopen2(file, "image_tiles", H5P_DEFAULT);
    const hsize_t tile_1[4] = {1, 0, 0, 0};
    unsigned filter_mask = 0;
    hsize_t size = 0;
    ASSERT_GE(H5Dget_chunk_info_by_coord(dataset, tile_1, &filter_mask, &address, &size), 0);
    ASSERT_GT(size, 8u);
    address += size / 2;
    H5Dclose(dataset);
    H5Fclose(file);
  }
  {
    std::fstream bytes(corrupt, std::ios::in | std::ios::out | std::ios::binary);
    bytes.seekg(static_cast<std::streamoff>(address));
    const char original = static_cast<char>(bytes.get());
    bytes.seekp(static_cast<std::streamoff>(address));
    bytes.put(static_cast<char>(original ^ 0x5a));
  }
  store = SftStoreDataset::open(corrupt, llama3_tokenizer(), tiny_processor(), {});
  ASSERT_TRUE(store.ok()) << store.status();  // the header and offsets are intact
  EXPECT_TRUE((*store)->sample(0).ok());       // text only: never touches the tile
  absl::StatusOr<SftSample> sample = (*store)->sample(1);
  ASSERT_FALSE(sample.ok());
  EXPECT_NE(sample.status().message().find(corrupt.string() + " sample 1: " + corrupt.string() +
                                           ":/image_tiles: the chunk of row 1 fails its Fletcher-32 checksum"),
            std::string::npos)
      << sample.status();

  const absl::StatusOr<std::unique_ptr<SftStoreDataset>> missing =
      SftStoreDataset::open(dir / "nothing.h5", llama3_tokenizer(), tiny_processor(), {});
  EXPECT_NE(missing.status().message().find("nothing.h5: cannot open"), std::string::npos);
  {
    absl::StatusOr<hdf5::File> foreign = hdf5::File::create(dir / "foreign.h5");  // HDF5, but not a store
    ASSERT_TRUE(foreign.ok() && foreign->close().ok());
  }
  const absl::StatusOr<std::unique_ptr<SftStoreDataset>> foreign =
      SftStoreDataset::open(dir / "foreign.h5", llama3_tokenizer(), tiny_processor(), {});
  EXPECT_NE(foreign.status().message().find("foreign.h5 attribute plm_sft_store: missing (not a store written by plm)"),
            std::string::npos)
      << foreign.status();
  const absl::StatusOr<std::unique_ptr<SftStoreDataset>> not_hdf5 =
      SftStoreDataset::open(dir / "train.jsonl", llama3_tokenizer(), tiny_processor(), {});
  EXPECT_NE(not_hdf5.status().message().find("train.jsonl: not a readable HDF5 file"), std::string::npos);
}

TEST(SftStore, AFailedPackLeavesTheOldOutputAndNoTemporaryFile) {
  std::vector<std::string> lines = mixed_lines();
  lines.push_back(R"({"messages": [{"role": "user", "content": "no answer"}]})");
  const std::filesystem::path dir = make_sft_dir("sft_store_atomic", lines);
  testing::write_test_file(dir / "train.h5", "old");
  SftDataConfig config;
  absl::StatusOr<PackSummary> summary = pack(dir, config);
  ASSERT_FALSE(summary.ok());
  EXPECT_NE(summary.status().message().find("train.jsonl:5: no assistant turn"), std::string::npos) << summary.status();
  EXPECT_EQ(testing::read_test_file(dir / "train.h5"), "old");

  // A sample over max_tokens fails while packing (after the file was started): the temporary file goes.
  lines.pop_back();
  const std::filesystem::path long_dir = make_sft_dir("sft_store_atomic_long", lines);
  config.max_tokens = 40;
  summary = pack(long_dir, config);
  ASSERT_FALSE(summary.ok());
  EXPECT_NE(summary.status().message().find("train.jsonl:2: "), std::string::npos) << summary.status();
  EXPECT_NE(summary.status().message().find("exceed max_tokens 40"), std::string::npos) << summary.status();
  for (const auto& entry : std::filesystem::directory_iterator(long_dir)) {
    EXPECT_EQ(entry.path().string().find(".h5"), std::string::npos) << entry.path();
  }
}

TEST(PixelLevels, RebuildPreprocessedPixelsExactlyAndRejectOtherValues) {
  absl::StatusOr<ProcessedImage> image = load_and_process_image(
      plm::testing::fixtures_dir() / "models" / "inputs" / "image_150x100.png", tiny_processor().image);
  ASSERT_TRUE(image.ok()) << image.status();
  const ImageProcessorConfig& c = tiny_processor().image;
  const PixelNormalizer normalizer(c.rescale_factor, c.image_mean, c.image_std);
  ASSERT_TRUE(normalizer.invertible());
  absl::StatusOr<std::vector<uint8_t>> levels = pixels_to_levels(image->pixel_values, normalizer);
  ASSERT_TRUE(levels.ok()) << levels.status();
  const OwnedTensor rebuilt(image->pixel_values.shape(), DType::kF32);
  levels_to_pixels(levels->data(), rebuilt, normalizer);
  expect_same_tensor(rebuilt, image->pixel_values, "rebuilt tiles");

  image->pixel_values.data_as<float>()[7] += 1e-3f;
  absl::StatusOr<std::vector<uint8_t>> bad = pixels_to_levels(image->pixel_values, normalizer);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("flat index 7"), std::string::npos) << bad.status();
  // A mean so large that the 256 levels round to a few f32 values cannot be stored as u8.
  EXPECT_FALSE(PixelNormalizer(1.0 / 255.0, {1e10f, 0.5f, 0.5f}, {0.5f, 0.5f, 0.5f}).invertible());
}

}  // namespace
}  // namespace plm::data
