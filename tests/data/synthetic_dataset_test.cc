// `plm data synth`'s data set: deterministic bytes, the splits, the ground truth, and files that plm's own
// readers decode (the PNG and the MP4 show the shape where and how the attributes say) and that the SFT
// loader accepts.
#include "data/synthetic_dataset.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include "data/image_decode.h"
#include "data/read_file.h"
#include "data/sft_jsonl.h"
#include "data/video.h"
#include "tests/core/test_temp_dir.h"
#include "tests/data/sft_test_util.h"
#include "tests/data/tokenizer_test_util.h"

namespace plm::data {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

SynthConfig small_config(uint64_t seed) {
  SynthConfig config;
  config.num_images = 20;
  config.num_videos = 10;
  config.seed = seed;
  config.size = 64;
  return config;
}

// Every file under dir (relative path -> bytes).
std::map<std::string, std::string> all_files(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const fs::directory_entry& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    absl::StatusOr<std::string> bytes = read_file(e.path());
    EXPECT_TRUE(bytes.ok()) << bytes.status();
    files[fs::relative(e.path(), dir).string()] = bytes.ok() ? *bytes : "";
  }
  return files;
}

// The centre of the pixels that differ from the corner's (the background), in pixels.
struct Point {
  double x = 0, y = 0;
};
Point shape_centre(const RgbImage& image) {
  const uint8_t* corner = image.row(0);
  double sx = 0, sy = 0, n = 0;
  for (int y = 0; y < image.height; ++y) {
    for (int x = 0; x < image.width; ++x) {
      const uint8_t* p = image.row(y) + x * kRgbChannels;
      const int diff = std::abs(p[0] - corner[0]) + std::abs(p[1] - corner[1]) + std::abs(p[2] - corner[2]);
      if (diff < 60) continue;
      sx += x;
      sy += y;
      ++n;
    }
  }
  EXPECT_GT(n, 0) << "no shape in the picture";
  return {sx / n, sy / n};
}

// The mean colour of the pixels that differ from the background.
std::array<double, 3> shape_rgb(const RgbImage& image) {
  const uint8_t* corner = image.row(0);
  std::array<double, 3> sum = {0, 0, 0};
  double n = 0;
  for (size_t i = 0; i + 2 < image.pixels.size(); i += kRgbChannels) {
    const uint8_t* p = image.pixels.data() + i;
    if (std::abs(p[0] - corner[0]) + std::abs(p[1] - corner[1]) + std::abs(p[2] - corner[2]) < 120) continue;
    for (int c = 0; c < 3; ++c) sum[c] += p[c];
    ++n;
  }
  for (double& s : sum) s /= std::max(n, 1.0);
  return sum;
}

// The palette colour nearest to `rgb`.
ShapeColour nearest_colour(const std::array<double, 3>& rgb) {
  ShapeColour best = ShapeColour::kRed;
  double best_distance = 1e9;
  for (const ShapeColour colour : kShapeColours) {
    const Rgb8 b = base_rgb(colour);
    const double d = std::hypot(rgb[0] - b.r, rgb[1] - b.g, rgb[2] - b.b);
    if (d < best_distance) {
      best_distance = d;
      best = colour;
    }
  }
  return best;
}

TEST(SynthDataset, TheSameSeedGivesTheSameBytesAndAnotherSeedOtherOnes) {
  const fs::path a = plm::testing::fresh_temp_dir("a"), b = plm::testing::fresh_temp_dir("b");
  const fs::path c = plm::testing::fresh_temp_dir("c");
  ASSERT_TRUE(write_synthetic_dataset(small_config(5), a).ok());
  ASSERT_TRUE(write_synthetic_dataset(small_config(5), b).ok());
  ASSERT_TRUE(write_synthetic_dataset(small_config(6), c).ok());
  const std::map<std::string, std::string> files_a = all_files(a);
  EXPECT_EQ(files_a.size(), 20u + 10u + 3u);  // media + train/validation/test.jsonl
  EXPECT_EQ(files_a, all_files(b));
  EXPECT_NE(files_a.at("train.jsonl"), all_files(c).at("train.jsonl"));
}

TEST(SynthDataset, ItemsDependOnlyOnSeedKindAndIndex) {
  SynthConfig more = small_config(3);
  more.num_images = 50;
  const std::vector<SynthItem> few = plan_synthetic_items(small_config(3));
  const std::vector<SynthItem> many = plan_synthetic_items(more);
  for (int64_t k = 0; k < 20; ++k) {
    EXPECT_EQ(describe(few[k].attributes), describe(many[k].attributes));
    EXPECT_EQ(few[k].first.center_x, many[k].first.center_x);
  }
}

TEST(SynthDataset, SplitsTakeEachKindInOrderByTheFractions) {
  const std::vector<SynthItem> items = plan_synthetic_items(small_config(1));
  std::map<std::pair<MediaKind, SynthSplit>, int> counts;
  for (const SynthItem& item : items) ++counts[{item.kind, item.split}];
  EXPECT_EQ((counts[{MediaKind::kImage, SynthSplit::kTrain}]), 16);
  EXPECT_EQ((counts[{MediaKind::kImage, SynthSplit::kValidation}]), 2);
  EXPECT_EQ((counts[{MediaKind::kImage, SynthSplit::kTest}]), 2);
  EXPECT_EQ((counts[{MediaKind::kVideo, SynthSplit::kTrain}]), 8);
  EXPECT_EQ((counts[{MediaKind::kVideo, SynthSplit::kTest}]), 1);
  EXPECT_EQ(items[15].split, SynthSplit::kTrain);
  EXPECT_EQ(items[16].split, SynthSplit::kValidation);
  EXPECT_EQ(items[19].split, SynthSplit::kTest);
}

TEST(SynthDataset, EveryAttributeValueOccurs) {
  SynthConfig config = small_config(2);
  config.num_images = config.num_videos = 200;
  std::set<std::string> seen;
  for (const SynthItem& item : plan_synthetic_items(config)) {
    seen.insert(name(item.attributes.shape));
    seen.insert(name(item.attributes.colour));
    if (item.attributes.position) seen.insert(name(*item.attributes.position));
    if (item.attributes.motion) seen.insert(name(*item.attributes.motion));
  }
  EXPECT_EQ(seen.size(), kShapeKinds.size() + kShapeColours.size() + kImagePositions.size() + kMotions.size());
}

TEST(SynthDataset, PngsDecodeWithTheShapeInItsQuadrantAndColour) {
  const fs::path dir = plm::testing::fresh_temp_dir();
  const absl::StatusOr<SynthSummary> summary = write_synthetic_dataset(small_config(9), dir);
  ASSERT_TRUE(summary.ok()) << summary.status();
  for (const SynthItem& item : summary->items) {
    if (item.kind != MediaKind::kImage) continue;
    const absl::StatusOr<RgbImage> image = decode_image_file(dir / item.media);
    ASSERT_TRUE(image.ok()) << image.status();
    ASSERT_EQ(image->width, 64);
    ASSERT_EQ(image->height, 64);
    const Point centre = shape_centre(*image);
    const ImagePosition position = centre.y < 32
                                       ? (centre.x < 32 ? ImagePosition::kTopLeft : ImagePosition::kTopRight)
                                       : (centre.x < 32 ? ImagePosition::kBottomLeft : ImagePosition::kBottomRight);
    EXPECT_EQ(name(position), std::string(name(*item.attributes.position))) << item.media;
    EXPECT_EQ(name(nearest_colour(shape_rgb(*image))), std::string(name(item.attributes.colour))) << item.media;
  }
}

TEST(SynthDataset, Mp4sDecodeWithEveryFrameAndTheShapeMovingAsTheMotionSays) {
  const fs::path dir = plm::testing::fresh_temp_dir();
  const absl::StatusOr<SynthSummary> summary = write_synthetic_dataset(small_config(4), dir);
  ASSERT_TRUE(summary.ok()) << summary.status();
  for (const SynthItem& item : summary->items) {
    if (item.kind != MediaKind::kVideo) continue;
    const absl::StatusOr<DecodedVideo> video = decode_video_file(dir / item.media, FrameSampling{});
    ASSERT_TRUE(video.ok()) << video.status();
    ASSERT_EQ(video->frames.size(), 8u) << item.media;  // every frame, the last one included
    EXPECT_EQ(video->info.width, 64);
    EXPECT_NEAR(video->info.average_fps, 8.0, 1e-6);
    const Point first = shape_centre(video->frames.front()), last = shape_centre(video->frames.back());
    const double dx = last.x - first.x, dy = last.y - first.y;
    const Motion seen = std::abs(dx) > std::abs(dy) ? (dx > 0 ? Motion::kRight : Motion::kLeft)
                                                    : (dy > 0 ? Motion::kDown : Motion::kUp);
    EXPECT_EQ(name(seen), std::string(name(*item.attributes.motion))) << item.media;
    EXPECT_GT(std::hypot(dx, dy), 0.4 * 64) << "the shape crosses most of the frame";
    EXPECT_EQ(name(nearest_colour(shape_rgb(video->frames[3]))), std::string(name(item.attributes.colour)))
        << item.media;
  }
}

TEST(SynthDataset, SplitsAreSftJsonlThatTheTrainerLoadsAndThatReadBackAsTheGroundTruth) {
  const fs::path dir = plm::testing::fresh_temp_dir();
  const absl::StatusOr<SynthSummary> summary = write_synthetic_dataset(small_config(8), dir);
  ASSERT_TRUE(summary.ok()) << summary.status();
  ASSERT_EQ(summary->jsonl_files.size(), 3u);
  const absl::StatusOr<std::unique_ptr<SftJsonlDataset>> train =
      SftJsonlDataset::open(dir / "train.jsonl", plm::testing::llama3_tokenizer(), plm::testing::tiny_processor(), {});
  ASSERT_TRUE(train.ok()) << train.status();
  EXPECT_EQ((*train)->size(), 16 + 8);

  const absl::StatusOr<std::vector<SynthExample>> test = read_synthetic_split(dir / "test.jsonl");
  ASSERT_TRUE(test.ok()) << test.status();
  std::vector<const SynthItem*> test_items;
  for (const SynthItem& item : summary->items) {
    if (item.split == SynthSplit::kTest) test_items.push_back(&item);
  }
  ASSERT_EQ(test->size(), test_items.size());
  for (size_t i = 0; i < test->size(); ++i) {
    const SynthExample& e = (*test)[i];
    const SynthItem& item = *test_items[i];
    EXPECT_EQ(e.kind, item.kind);
    EXPECT_EQ(e.media, dir / item.media);
    EXPECT_EQ(e.system, kSyntheticSystemPrompt);
    EXPECT_EQ(e.question, synthetic_question(item.kind));
    EXPECT_EQ(e.answer, describe(item.attributes));
    EXPECT_EQ(describe(e.attributes), describe(item.attributes));
  }
}

TEST(SynthDataset, ReadingAFileWithoutGroundTruthNamesTheLine) {
  const fs::path dir = plm::testing::fresh_temp_dir();
  plm::testing::write_test_file(dir / "x.jsonl", "{\"messages\": []}\n");
  const absl::StatusOr<std::vector<SynthExample>> read = read_synthetic_split(dir / "x.jsonl");
  ASSERT_FALSE(read.ok());
  EXPECT_THAT(read.status().message(), HasSubstr("x.jsonl:1: no \"attributes\" object"));
}

TEST(SynthDataset, BadConfigsNameTheSetting) {
  SynthConfig config = small_config(1);
  config.size = 63;
  EXPECT_THAT(validate_synth_config(config).message(), HasSubstr("size 63 must be even"));
  config = small_config(1);
  config.num_images = config.num_videos = 0;
  EXPECT_THAT(validate_synth_config(config).message(), HasSubstr("not both 0"));
  config = small_config(1);
  config.validation_fraction = 0.6;
  config.test_fraction = 0.6;
  EXPECT_THAT(validate_synth_config(config).message(), HasSubstr("sum <= 1"));
  config = small_config(1);
  config.num_frames = 1;
  EXPECT_THAT(write_synthetic_dataset(config, plm::testing::fresh_temp_dir()).status().message(),
              HasSubstr("frames 1 must be at least 2"));
}

TEST(SynthShapes, DescribeThenParseGivesTheAttributesBack) {
  for (const ShapeKind shape : kShapeKinds) {
    for (const ShapeColour colour : kShapeColours) {
      for (const ImagePosition position : kImagePositions) {
        const ParsedAttributes p = parse_attributes(
            describe({.shape = shape, .colour = colour, .position = position, .motion = std::nullopt}));
        EXPECT_EQ(p.shape, shape);
        EXPECT_EQ(p.colour, colour);
        EXPECT_EQ(p.position, position);
        EXPECT_EQ(p.motion, std::nullopt);
      }
      for (const Motion motion : kMotions) {
        const ParsedAttributes p =
            parse_attributes(describe({.shape = shape, .colour = colour, .position = std::nullopt, .motion = motion}));
        EXPECT_EQ(p.shape, shape);
        EXPECT_EQ(p.colour, colour);
        EXPECT_EQ(p.position, std::nullopt);
        EXPECT_EQ(p.motion, motion);
      }
    }
  }
  EXPECT_EQ(describe({.shape = ShapeKind::kCircle,
                      .colour = ShapeColour::kRed,
                      .position = ImagePosition::kTopLeft,
                      .motion = std::nullopt}),
            "red circle, top left");
  EXPECT_EQ(describe({.shape = ShapeKind::kSquare,
                      .colour = ShapeColour::kBlue,
                      .position = std::nullopt,
                      .motion = Motion::kRight}),
            "blue square moving right");
}

TEST(SynthShapes, ParseTakesTheFirstWordOfEachKindAndIgnoresCase) {
  const ParsedAttributes p = parse_attributes("A Blue triangle... no, a red square, Bottom Right");
  EXPECT_EQ(p.colour, ShapeColour::kBlue);
  EXPECT_EQ(p.shape, ShapeKind::kTriangle);
  EXPECT_EQ(p.position, ImagePosition::kBottomRight);
  EXPECT_EQ(parse_attributes("nothing useful").shape, std::nullopt);
}

}  // namespace
}  // namespace plm::data
