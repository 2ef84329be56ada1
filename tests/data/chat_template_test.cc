// The PLM chat template against the 5 committed cases rendered by HF's Jinja template, placeholder
// expansion, python_strip, and bad messages.
#include "data/chat_template.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/data/tokenizer_test_util.h"

namespace plm::data {
namespace {

TEST(ChatTemplate, MatchesHfRenderingAndIdsOnSharedCases) {
  const nlohmann::json doc =
      nlohmann::json::parse(testing::read_test_file(testing::tokenizer_data_dir() / "plm_chat_template_cases.json"));
  int checked = 0;
  for (const nlohmann::json& c : doc["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    absl::StatusOr<std::vector<ChatMessage>> messages = parse_chat_messages(c["messages"].dump());
    ASSERT_TRUE(messages.ok()) << messages.status();
    const std::string rendered = render_chat_prompt(*messages, c["add_generation_prompt"].get<bool>());
    EXPECT_EQ(rendered, c["rendered"].get<std::string>());
    // The rendered text carries its own <|begin_of_text|>: no BOS is added (the double-BOS trap).
    const std::vector<int32_t> ids = testing::llama3_tokenizer().encode(rendered, {.allow_special = true, .add_bos = false});
    EXPECT_EQ(ids, c["ids"].get<std::vector<int32_t>>());
    ++checked;
  }
  EXPECT_EQ(checked, 5);
}

TEST(ChatTemplate, ImagesThenVideosThenTrimmedText) {
  absl::StatusOr<std::vector<ChatMessage>> messages = parse_chat_messages(R"([
    {"role": "user", "content": [{"type": "text", "text": " Compare "}, {"type": "video_url", "video_url": {"url": "a.mp4"}},
                                 {"type": "image", "url": "x.png"}, {"type": "text", "text": "these\n"}]}])");
  ASSERT_TRUE(messages.ok()) << messages.status();
  const std::string rendered = render_chat_prompt(*messages, false);
  EXPECT_NE(rendered.find("user<|end_header_id|>\n\n<|image|><|video|>Comparethese<|eot_id|>"), std::string::npos)
      << rendered;
  const auto videos = media_parts(*messages, ContentPart::Type::kVideo);
  ASSERT_EQ(videos.size(), 1u);
  EXPECT_EQ(videos[0]->url, "a.mp4");
  EXPECT_EQ(media_parts(*messages, ContentPart::Type::kImage)[0]->url, "x.png");
}

TEST(ChatTemplate, SystemMessageReplacesTheDefault) {
  absl::StatusOr<std::vector<ChatMessage>> messages =
      parse_chat_messages(R"([{"role": "system", "content": "  Be terse. "}, {"role": "user", "content": "hi"}])");
  ASSERT_TRUE(messages.ok());
  EXPECT_EQ(render_chat_prompt(*messages, true),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe terse.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplate, PythonStripUsesPythonWhitespace) {
  EXPECT_EQ(python_strip("\x1c\t a b \xe3\x80\x80"), "a b");  // U+001C and U+3000 are whitespace to Python
  EXPECT_EQ(python_strip("\xe2\x80\x8b" "x"), "\xe2\x80\x8b" "x");  // U+200B is not
  EXPECT_EQ(python_strip("   "), "");
}

TEST(ChatTemplate, ExpandsPlaceholdersPerItem) {
  absl::StatusOr<std::vector<int32_t>> ids = expand_placeholders({1, 128002, 2, 128002}, 128002, {2, 3});
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, (std::vector<int32_t>{1, 128002, 128002, 2, 128002, 128002, 128002}));
  absl::StatusOr<std::vector<int32_t>> bad = expand_placeholders({128002}, 128002, {4, 4});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("1 placeholders"), std::string::npos);
}

TEST(ChatTemplate, BadMessagesNameTheProblem) {
  const auto error = [](const std::string& json) { return std::string(parse_chat_messages(json).status().message()); };
  EXPECT_NE(error("[{\"role\": \"user\", \"content\": [{\"type\": \"audio\"}]}]").find("unknown content part type \"audio\""),
            std::string::npos);
  EXPECT_NE(error("[{\"content\": \"x\"}]").find("messages[0]: needs a string \"role\""), std::string::npos);
  EXPECT_NE(error("{").find("not valid JSON"), std::string::npos);
  EXPECT_NE(error("[]").find("non-empty"), std::string::npos);
  EXPECT_NE(error("[{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": 3}]}]").find("string \"text\""),
            std::string::npos);
}

}  // namespace
}  // namespace plm::data
