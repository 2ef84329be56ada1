#include "caption/caption_record.h"

#include <gtest/gtest.h>

namespace plm::caption {
namespace {

CaptionRecord a_caption() {
  return {.id = "v\"1", .path = "/d/v1.mp4", .error = std::nullopt, .caption = "A cat.\nThen a dog.", .frames = 8,
          .prompt_tokens = 300, .completion_tokens = 12, .seconds = 1.23456, .embedding = {1.5f, -2.0f, 3.25f}};
}

TEST(CaptionRecord, OutputLineHasTheDocumentedFieldsInOrder) {
  EXPECT_EQ(record_line(a_caption(), LineFields::kOutput),
            "{\"id\":\"v\\\"1\",\"path\":\"/d/v1.mp4\",\"caption\":\"A cat.\\nThen a dog.\",\"frames\":8,"
            "\"prompt_tokens\":300,\"completion_tokens\":12,\"seconds\":1.235}");
  const CaptionRecord error{.id = "x", .path = "/d/x.mp4", .error = "x.mp4: the video has no frames"};
  EXPECT_EQ(record_line(error, LineFields::kPart), "{\"id\":\"x\",\"path\":\"/d/x.mp4\",\"error\":\"x.mp4: the video has no frames\"}");
}

TEST(CaptionRecord, PartLineRoundTripsWithTheEmbedding) {
  const absl::StatusOr<CaptionRecord> back = parse_record_line(record_line(a_caption(), LineFields::kPart));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->id, "v\"1");
  EXPECT_EQ(back->caption, "A cat.\nThen a dog.");
  EXPECT_EQ(back->frames, 8);
  EXPECT_EQ(back->completion_tokens, 12);
  EXPECT_DOUBLE_EQ(back->seconds, 1.235);
  EXPECT_EQ(back->embedding, (std::vector<float>{1.5f, -2.0f, 3.25f}));
  EXPECT_TRUE(parse_record_line(record_line(a_caption(), LineFields::kOutput))->embedding.empty());
}

TEST(CaptionRecord, InvalidUtf8InACaptionIsReplacedNotThrown) {
  CaptionRecord r = a_caption();
  r.caption = "cut \xE2\x82";  // a character cut by the token limit
  const absl::StatusOr<CaptionRecord> back = parse_record_line(record_line(r, LineFields::kOutput));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->caption, "cut \xEF\xBF\xBD");
}

TEST(CaptionRecord, RejectsWhatIsNotARecord) {
  EXPECT_FALSE(parse_record_line("{\"id\": \"a\", \"path\": \"b\", \"caption\": \"c\"").ok());  // torn
  EXPECT_FALSE(parse_record_line("[1, 2]").ok());
  EXPECT_FALSE(parse_record_line("{\"id\": \"a\", \"path\": \"b\", \"caption\": \"c\"}").ok());
  EXPECT_FALSE(parse_record_line("{\"id\":\"a\",\"path\":\"b\",\"caption\":\"c\",\"frames\":1,\"prompt_tokens\":1,"
                                 "\"completion_tokens\":1,\"seconds\":1,\"embedding\":\"%%%\"}")
                   .ok());
}

}  // namespace
}  // namespace plm::caption
