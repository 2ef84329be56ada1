// SFT JSONL: media paths relative to the file under every HF key, blank lines, file:line errors for each
// kind of bad line, and the dataset opener's dispatch by extension.
#include "data/sft_jsonl.h"

#include <gtest/gtest.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "tests/data/sft_test_util.h"
#include "tests/data/tokenizer_test_util.h"

namespace plm::data {
namespace {

using plm::testing::llama3_tokenizer;
using plm::testing::make_sft_dir;
using plm::testing::tiny_processor;

constexpr char kTextLine[] =
    R"({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]})";

absl::StatusOr<std::unique_ptr<SftJsonlDataset>> open(const std::filesystem::path& dir, const SftDataConfig& config = {}) {
  return SftJsonlDataset::open(dir / "train.jsonl", llama3_tokenizer(), tiny_processor(), config);
}

std::string open_error(const std::string& name, const std::vector<std::string>& lines) {
  absl::StatusOr<std::unique_ptr<SftJsonlDataset>> dataset = open(make_sft_dir(name, lines));
  return dataset.ok() ? "ok" : std::string(dataset.status().message());
}

TEST(SftJsonl, ResolvesMediaRelativeToTheFileUnderEveryKey) {
  const std::filesystem::path dir = make_sft_dir(
      "sft_jsonl_keys",
      {kTextLine, "",
       R"({"messages": [{"role": "user", "content": [{"type": "image", "path": "media/image.png"}, {"type": "text", "text": "What?"}]}, {"role": "assistant", "content": "A picture."}]})",
       R"({"messages": [{"role": "user", "content": [{"type": "image", "url": "media/image.png"}]}, {"role": "assistant", "content": "x"}]})",
       R"({"messages": [{"role": "user", "content": [{"type": "image", "image": "media/image.png"}]}, {"role": "assistant", "content": "x"}]})",
       R"({"messages": [{"role": "user", "content": [{"type": "video", "video": "media/clip.mp4"}]}, {"role": "assistant", "content": "x"}]})"});
  const std::string absolute = (dir / "media" / "clip.mp4").string();
  testing::write_test_file(dir / "abs.jsonl", absl::StrCat(R"({"messages": [{"role": "user", "content": [{"type": "video", "path": "file://)",
                                                            absolute, R"("}]}, {"role": "assistant", "content": "x"}]})", "\n"));
  absl::StatusOr<std::unique_ptr<SftJsonlDataset>> dataset = open(dir);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  ASSERT_EQ((*dataset)->size(), 5);  // the blank line is not a sample
  EXPECT_EQ((*dataset)->location(1), (dir / "train.jsonl").string() + ":3");
  for (int64_t i = 0; i < 5; ++i) {
    absl::StatusOr<SftSample> sample = (*dataset)->sample(i);
    ASSERT_TRUE(sample.ok()) << sample.status();
    absl::StatusOr<SampleExtent> extent = (*dataset)->extent(i);
    ASSERT_TRUE(extent.ok());
    EXPECT_EQ(extent->num_tokens, static_cast<int64_t>(sample->ids.size()));
    EXPECT_EQ(extent->num_vision_tiles, sample->num_vision_tiles());
    EXPECT_GT(sample->num_labelled(), 0);
  }
  EXPECT_EQ((*dataset)->sample(0)->num_vision_tiles(), 0);
  EXPECT_GT((*dataset)->sample(1)->num_vision_tiles(), 1);  // thumbnail + tiles
  EXPECT_EQ((*dataset)->sample(4)->frames_per_video, (std::vector<int64_t>{4}));

  // The same image through "path", "url" and "image" gives the same pixels.
  const SftSample a = *(*dataset)->sample(2), b = *(*dataset)->sample(3);
  ASSERT_EQ(a.image_pixels.shape(), b.image_pixels.shape());
  EXPECT_EQ(std::memcmp(a.image_pixels.data_as<float>(), b.image_pixels.data_as<float>(), a.image_pixels.view().nbytes()), 0);

  absl::StatusOr<std::unique_ptr<SftJsonlDataset>> file_url =
      SftJsonlDataset::open(dir / "abs.jsonl", llama3_tokenizer(), tiny_processor(), {});
  ASSERT_TRUE(file_url.ok()) << file_url.status();
  EXPECT_EQ((*file_url)->sample(0)->frames_per_video, (std::vector<int64_t>{4}));
}

TEST(SftJsonl, EveryBadLineIsAnErrorWithFileAndLine) {
  const std::string image = R"({"type": "image", "path": "media/missing.png"})";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{\"messages\": [", "train.jsonl:2: not valid JSON"},
      {R"({"conversation": []})", "train.jsonl:2: expected an object with a \"messages\" list"},
      {R"({"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]})",
       "train.jsonl:2: messages[0]: unknown role \"robot\""},
      {R"({"messages": [{"role": "user", "content": [)" + image + R"(]}, {"role": "assistant", "content": "y"}]})",
       "train.jsonl:2: messages[0].content[0]: image "},
      {R"({"messages": [{"role": "user", "content": "only a question"}]})", "train.jsonl:2: no assistant turn"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image", "url": "https://x/y.png"}]}, {"role": "assistant", "content": "y"}]})",
       "train.jsonl:2: messages[0].content[0]: https://x/y.png: only local files are read"},
  };
  int index = 0;
  for (const auto& [line, expected] : cases) {
    SCOPED_TRACE(line);
    const std::string message = open_error(absl::StrCat("sft_jsonl_bad_", index++), {kTextLine, line});
    EXPECT_NE(message.find(expected), std::string::npos) << message;
  }
  EXPECT_NE(open_error("sft_jsonl_missing_media", {absl::StrCat(R"({"messages": [{"role": "user", "content": [)", image,
                                                                R"(]}, {"role": "assistant", "content": "y"}]})")})
                .find("missing.png: no such file"),
            std::string::npos);
  EXPECT_NE(open_error("sft_jsonl_empty", {"", "  "}).find("no samples"), std::string::npos);
}

TEST(SftJsonl, TooLongSampleFailsWhenBuiltWithItsLine) {
  SftDataConfig config;
  config.max_tokens = 12;
  absl::StatusOr<std::unique_ptr<SftJsonlDataset>> dataset = open(make_sft_dir("sft_jsonl_long", {kTextLine}), config);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  absl::StatusOr<SftSample> sample = (*dataset)->sample(0);
  ASSERT_FALSE(sample.ok());
  EXPECT_NE(sample.status().message().find("train.jsonl:1: "), std::string::npos) << sample.status();
  EXPECT_NE(sample.status().message().find("exceed max_tokens 12"), std::string::npos) << sample.status();
}

TEST(SftDataset, OpensByExtension) {
  const std::filesystem::path dir = make_sft_dir("sft_dataset_ext", {kTextLine});
  absl::StatusOr<std::unique_ptr<SftDataset>> jsonl =
      open_sft_dataset(dir / "train.jsonl", llama3_tokenizer(), tiny_processor(), {});
  ASSERT_TRUE(jsonl.ok()) << jsonl.status();
  EXPECT_EQ((*jsonl)->size(), 1);
  absl::StatusOr<std::unique_ptr<SftDataset>> other =
      open_sft_dataset(dir / "train.txt", llama3_tokenizer(), tiny_processor(), {});
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.status().message().find("must be SFT JSONL (.jsonl) or a plm data pack store (.h5)"), std::string::npos);
}

}  // namespace
}  // namespace plm::data
