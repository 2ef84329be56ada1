#include "caption/caption_inputs.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "tests/core/test_temp_dir.h"

namespace plm::caption {
namespace {

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

std::vector<std::string> ids_of(const std::vector<CaptionItem>& items) {
  std::vector<std::string> ids;
  for (const CaptionItem& i : items) ids.push_back(i.id);
  return ids;
}

TEST(CaptionInputs, TextListSkipsBlankAndCommentLinesAndResolvesRelativePaths) {
  const auto dir = testing::fresh_temp_dir();
  write_text(dir / "list.txt", "a.mp4\n\n# a comment\n/abs/b.png\r\nsub/c.webm\n");
  const absl::StatusOr<std::vector<CaptionItem>> items = read_caption_inputs(dir / "list.txt");
  ASSERT_TRUE(items.ok()) << items.status();
  ASSERT_EQ(items->size(), 3u);
  EXPECT_EQ(ids_of(*items), (std::vector<std::string>{"a.mp4", "/abs/b.png", "sub/c.webm"}));
  EXPECT_EQ((*items)[0].path, (dir / "a.mp4").string());
  EXPECT_EQ((*items)[1].path, "/abs/b.png");
  EXPECT_EQ((*items)[1].type, MediaType::kImage);
  EXPECT_EQ((*items)[2].type, MediaType::kVideo);
  EXPECT_EQ((*items)[2].index, 2);
}

TEST(CaptionInputs, JsonlWithIdsPromptsAndDefaults) {
  const auto dir = testing::fresh_temp_dir();
  write_text(dir / "list.jsonl",
             "{\"id\": \"v1\", \"path\": \"clips/one.mp4\", \"prompt\": \"What happens?\"}\n"
             "{\"path\": \"/data/two.jpg\"}\n");
  const absl::StatusOr<std::vector<CaptionItem>> items = read_caption_inputs(dir / "list.jsonl");
  ASSERT_TRUE(items.ok()) << items.status();
  ASSERT_EQ(items->size(), 2u);
  EXPECT_EQ((*items)[0].id, "v1");
  EXPECT_EQ((*items)[0].path, (dir / "clips/one.mp4").string());
  EXPECT_EQ((*items)[0].prompt, "What happens?");
  EXPECT_EQ((*items)[1].id, "/data/two.jpg");
  EXPECT_FALSE((*items)[1].prompt.has_value());
  EXPECT_EQ((*items)[1].type, MediaType::kImage);
}

TEST(CaptionInputs, ErrorsNameTheLine) {
  const auto dir = testing::fresh_temp_dir();
  write_text(dir / "dup.txt", "a.mp4\nb.mp4\na.mp4\n");
  absl::StatusOr<std::vector<CaptionItem>> items = read_caption_inputs(dir / "dup.txt");
  EXPECT_EQ(items.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(items.status().message()), ::testing::HasSubstr("dup.txt:3: the id \"a.mp4\" is already on line 1"));

  write_text(dir / "bad.jsonl", "{\"path\": \"a.mp4\"}\n{\"id\": 3, \"path\": \"b.mp4\"}\n");
  items = read_caption_inputs(dir / "bad.jsonl");
  EXPECT_THAT(std::string(items.status().message()), ::testing::HasSubstr("bad.jsonl:2: \"id\" must be a string"));
  write_text(dir / "nopath.jsonl", "{\"id\": \"x\"}\n");
  EXPECT_THAT(std::string(read_caption_inputs(dir / "nopath.jsonl").status().message()),
              ::testing::HasSubstr("nopath.jsonl:1: needs a \"path\""));
  write_text(dir / "notjson.jsonl", "{\"path\": \n");
  EXPECT_THAT(std::string(read_caption_inputs(dir / "notjson.jsonl").status().message()),
              ::testing::HasSubstr("notjson.jsonl:1: not a JSON object"));
  EXPECT_EQ(read_caption_inputs(dir / "absent.txt").status().code(), absl::StatusCode::kNotFound);
}

TEST(CaptionInputs, DirectoryIsRecursiveSortedAndKeepsMediaFilesOnly) {
  const auto dir = testing::fresh_temp_dir();
  for (const char* name : {"b.mp4", "a/z.MKV", "a/y.png", "notes.txt", "a/deep/x.webm", "c.jpeg"}) write_text(dir / "in" / name, "x");
  const absl::StatusOr<std::vector<CaptionItem>> items = read_caption_inputs(dir / "in");
  ASSERT_TRUE(items.ok()) << items.status();
  EXPECT_EQ(ids_of(*items), (std::vector<std::string>{"a/deep/x.webm", "a/y.png", "a/z.MKV", "b.mp4", "c.jpeg"}));
  EXPECT_EQ((*items)[0].path, (dir / "in/a/deep/x.webm").string());
}

TEST(CaptionInputs, ShardsRoundRobin) {
  std::vector<CaptionItem> items(7);
  for (int i = 0; i < 7; ++i) items[i].id = std::to_string(i);
  EXPECT_EQ(ids_of(shard_items(items, 0, 3)), (std::vector<std::string>{"0", "3", "6"}));
  EXPECT_EQ(ids_of(shard_items(items, 2, 3)), (std::vector<std::string>{"2", "5"}));
  EXPECT_EQ(shard_items(items, 0, 1).size(), 7u);
}

}  // namespace
}  // namespace plm::caption
