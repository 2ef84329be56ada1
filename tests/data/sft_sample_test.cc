// SFT examples: ids equal the inference prompt's (same template, no generation prompt), each label mode
// marks exactly its tokens, media placeholders are never labelled, and bad conversations are refused.
#include "data/sft_sample.h"

#include <gtest/gtest.h>

#include <cstring>

#include "tests/data/sft_test_util.h"
#include "tests/data/tokenizer_test_util.h"

namespace plm::data {
namespace {

using plm::testing::llama3_tokenizer;
using plm::testing::tiny_processor;

constexpr int32_t kImage = 128002, kVideo = 128003, kEot = 128009;

std::vector<ChatMessage> messages(const std::string& json) {
  absl::StatusOr<std::vector<ChatMessage>> parsed = parse_chat_messages(json);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return parsed.ok() ? *parsed : std::vector<ChatMessage>{};
}

absl::StatusOr<SftExample> build(const std::vector<ChatMessage>& m, const SftDataConfig& config = {}) {
  return build_sft_example(m, llama3_tokenizer(), tiny_processor(), config);
}

std::vector<int32_t> labelled(const std::vector<int32_t>& ids, const std::vector<uint8_t>& mask) {
  std::vector<int32_t> out;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (mask[i]) out.push_back(ids[i]);
  }
  return out;
}

std::string media_path(const std::string& name) {
  return (plm::testing::fixtures_dir() / "models" / "inputs" / name).string();
}

TEST(SftSample, AssistantModeLabelsAssistantContentAndItsEotOnly) {
  const auto m = messages(R"([{"role": "system", "content": "Be brief."},
      {"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": " Four. "},
      {"role": "user", "content": [{"type": "text", "text": "And 3+3?"}]},
      {"role": "assistant", "content": [{"type": "text", "text": "Six."}]}])");
  absl::StatusOr<SftExample> example = build(m);
  ASSERT_TRUE(example.ok()) << example.status();
  const Tokenizer& tok = llama3_tokenizer();
  EXPECT_EQ(example->ids, tok.encode(render_chat_prompt(m, false)));  // no generation prompt, one BOS
  EXPECT_EQ(example->ids.front(), 128000);
  EXPECT_EQ(example->ids.back(), kEot);

  std::vector<int32_t> expected = tok.encode("Four.");  // trimmed, as the template renders it
  expected.push_back(kEot);
  for (int32_t id : tok.encode("Six.")) expected.push_back(id);
  expected.push_back(kEot);
  EXPECT_EQ(labelled(example->ids, example->assistant_mask), expected);
  // Each labelled run starts right after the assistant header's "\n\n" (271) and ends with <|eot_id|>.
  for (size_t i = 1; i < example->ids.size(); ++i) {
    if (example->assistant_mask[i] && !example->assistant_mask[i - 1]) {
      ASSERT_GE(i, 4u);
      EXPECT_EQ(std::vector<int32_t>(example->ids.begin() + i - 4, example->ids.begin() + i),
                (std::vector<int32_t>{128006, 78191, 128007, 271}));
    }
  }
  // all_but_media: every token but the first.
  EXPECT_EQ(example->all_but_media_mask[0], 0);
  EXPECT_EQ(labelled(example->ids, example->all_but_media_mask),
            std::vector<int32_t>(example->ids.begin() + 1, example->ids.end()));

  const SftSample sample = select_labels(*std::move(example), LabelMode::kAssistant);
  EXPECT_EQ(sample.num_labelled(), static_cast<int64_t>(expected.size()));
  EXPECT_EQ(sample.num_vision_tiles(), 0);
  EXPECT_FALSE(sample.image_pixels.view().defined());
}

TEST(SftSample, MediaMatchesTheInferencePromptAndIsNeverLabelled) {
  const auto m = messages(R"([{"role": "user", "content": [{"type": "image", "path": ")" + media_path("image_150x100.png") +
                          R"("}, {"type": "text", "text": "Describe."}, {"type": "video", "path": ")" +
                          media_path("video_64x48_4f.mp4") + R"("}]},
      {"role": "assistant", "content": [{"type": "image", "url": ")" + media_path("image_150x100.png") +
                          R"("}, {"type": "text", "text": "Like this."}]}])");
  SftDataConfig config;
  absl::StatusOr<SftExample> example = build(m, config);
  ASSERT_TRUE(example.ok()) << example.status();
  const int tokens_per_tile = tiny_processor().image_tokens_per_tile();
  ASSERT_EQ(tokens_per_tile, 4);  // 56 / 14 / 2 = 2 per side

  absl::StatusOr<PromptInputs> prompt = build_prompt(m, /*add_generation_prompt=*/false, llama3_tokenizer(),
                                                     tiny_processor(), tokens_per_tile, config.media);
  ASSERT_TRUE(prompt.ok()) << prompt.status();
  EXPECT_EQ(example->ids, prompt->ids);
  EXPECT_EQ(example->tiles_per_image, prompt->tiles_per_image);
  EXPECT_EQ(example->frames_per_video, (std::vector<int64_t>{4}));
  ASSERT_EQ(example->image_pixels.shape(), prompt->image_pixels.shape());
  EXPECT_EQ(std::memcmp(example->image_pixels.data_as<float>(), prompt->image_pixels.data_as<float>(),
                        prompt->image_pixels.view().nbytes()), 0);
  ASSERT_EQ(example->video_pixels.shape(), prompt->video_pixels.shape());
  EXPECT_EQ(std::memcmp(example->video_pixels.data_as<float>(), prompt->video_pixels.data_as<float>(),
                        prompt->video_pixels.view().nbytes()), 0);

  int64_t image_tokens = 0, video_tokens = 0;
  for (size_t i = 0; i < example->ids.size(); ++i) {
    const bool media = example->ids[i] == kImage || example->ids[i] == kVideo;
    image_tokens += example->ids[i] == kImage;
    video_tokens += example->ids[i] == kVideo;
    if (media) {
      EXPECT_EQ(example->assistant_mask[i], 0) << i;
      EXPECT_EQ(example->all_but_media_mask[i], 0) << i;
    } else if (i > 0) {
      EXPECT_EQ(example->all_but_media_mask[i], 1) << i;
    }
  }
  const int64_t tiles = example->tiles_per_image[0] + example->tiles_per_image[1];
  EXPECT_EQ(image_tokens, tiles * tokens_per_tile);
  EXPECT_EQ(video_tokens, 4 * tokens_per_tile);
  std::vector<int32_t> expected = llama3_tokenizer().encode("Like this.");  // the assistant's image is not labelled
  expected.push_back(kEot);
  EXPECT_EQ(labelled(example->ids, example->assistant_mask), expected);
}

TEST(SftSample, BadConversationsNameTheProblem) {
  const auto error = [](const std::string& json, const SftDataConfig& config = {}) {
    absl::StatusOr<SftExample> example = build(messages(json), config);
    return example.ok() ? std::string("ok") : std::string(example.status().message());
  };
  EXPECT_NE(error(R"([{"role": "tool", "content": "x"}, {"role": "assistant", "content": "y"}])")
                .find("messages[0]: unknown role \"tool\""),
            std::string::npos);
  EXPECT_NE(error(R"([{"role": "user", "content": "x"}])").find("no assistant turn"), std::string::npos);
  EXPECT_NE(error(R"([{"role": "system", "content": [{"type": "image", "path": "a.png"}]},
                      {"role": "assistant", "content": "y"}])")
                .find("would be dropped"),
            std::string::npos);
  SftDataConfig short_limit;
  short_limit.max_tokens = 10;
  EXPECT_NE(error(R"([{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}])", short_limit)
                .find("exceed max_tokens 10"),
            std::string::npos);
}

TEST(SftSample, ImageAndVideoMustGiveTheSamePlaceholderCount) {
  ProcessorConfig processor = tiny_processor();
  processor.video.height = processor.video.width = 84;
  absl::StatusOr<int> count = sft_tokens_per_tile(processor);
  ASSERT_FALSE(count.ok());
  EXPECT_NE(count.status().message().find("video frame gives 9"), std::string::npos) << count.status();
}

TEST(SftSample, LabelModeNames) {
  EXPECT_EQ(*parse_label_mode("assistant"), LabelMode::kAssistant);
  EXPECT_EQ(*parse_label_mode("all_but_media"), LabelMode::kAllButMedia);
  EXPECT_STREQ(label_mode_name(LabelMode::kAllButMedia), "all_but_media");
  EXPECT_NE(parse_label_mode("all").status().message().find("expected assistant or all_but_media"), std::string::npos);
}

}  // namespace
}  // namespace plm::data
