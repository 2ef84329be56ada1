// The merge: parts written out of order by several replicas (and a restart over another replica count) into one
// output in input order, each item once, a caption preferred over an error; the embeddings file in the same
// order, read back with the HDF5 C API; nothing written when an item has no line.
#include "caption/merge.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "caption/part_file.h"
#include "data/hdf5_file.h"
#include "tests/core/test_temp_dir.h"

namespace plm::caption {
namespace {

std::vector<CaptionItem> items_named(const std::vector<std::string>& ids) {
  std::vector<CaptionItem> items;
  for (size_t i = 0; i < ids.size(); ++i) {
    items.push_back({.index = static_cast<int64_t>(i), .id = ids[i], .path = "/v/" + ids[i], .prompt = {}, .type = {}});
  }
  return items;
}

CaptionRecord caption(const std::string& id, float value) {
  return {.id = id, .path = "/v/" + id, .error = std::nullopt, .caption = "about " + id, .frames = 2,
          .prompt_tokens = 10, .completion_tokens = 3, .seconds = 0.25, .embedding = {value, value + 1}};
}

CaptionRecord failure(const std::string& id) { return {.id = id, .path = "/v/" + id, .error = "cannot open"}; }

void write_part(const std::filesystem::path& path, const std::vector<CaptionRecord>& records) {
  auto writer = PartWriter::open(path);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->append(records).ok());
}

std::vector<std::string> lines_of(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(Merge, InputOrderEachItemOnceWithEmbeddings) {
  const auto dir = testing::fresh_temp_dir();
  const std::filesystem::path out = dir / "captions.jsonl", h5 = dir / "emb.h5";
  const std::vector<CaptionItem> items = items_named({"a", "b", "c", "d", "e"});
  write_part(part_path(out, 1), {caption("d", 4), failure("b")});
  write_part(part_path(out, 0), {failure("e"), caption("c", 3), caption("a", 1)});
  // A restart over three replicas captioned b again; the caption wins over the earlier error.
  write_part(part_path(out, 2), {caption("b", 2), caption("a", 9)});
  std::ofstream(part_path(out, 3), std::ios::binary) << "{\"id\": \"torn";  // a crash mid-line: ignored

  const absl::StatusOr<MergeSummary> s = merge_parts(items, out, h5);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->num_items, 5);
  EXPECT_EQ(s->num_captions, 4);
  EXPECT_EQ(s->num_errors, 1);
  EXPECT_EQ(s->num_parts, 4);
  EXPECT_EQ(s->num_embeddings, 4);
  const std::vector<std::string> lines = lines_of(out);
  ASSERT_EQ(lines.size(), 5u);
  const std::vector<std::string> ids = {"a", "b", "c", "d", "e"};
  for (size_t i = 0; i < lines.size(); ++i) {
    const absl::StatusOr<CaptionRecord> r = parse_record_line(lines[i]);
    ASSERT_TRUE(r.ok()) << lines[i];
    EXPECT_EQ(r->id, ids[i]);
    EXPECT_TRUE(r->embedding.empty()) << "the output has no embeddings: " << lines[i];
    EXPECT_THAT(lines[i], ::testing::Not(::testing::HasSubstr("embedding")));
  }
  EXPECT_EQ(lines[0], record_line(caption("a", 1), LineFields::kOutput)) << "the first line of an id wins";
  EXPECT_EQ(lines[4], record_line(failure("e"), LineFields::kOutput));

  absl::StatusOr<data::hdf5::File> file = data::hdf5::File::open_read(h5);
  ASSERT_TRUE(file.ok()) << file.status();
  absl::StatusOr<std::vector<std::string>> h5_ids = data::hdf5::read_string_vector(*file, "ids");
  ASSERT_TRUE(h5_ids.ok()) << h5_ids.status();
  EXPECT_EQ(*h5_ids, (std::vector<std::string>{"a", "b", "c", "d"}));
  absl::StatusOr<data::hdf5::Dataset> embeddings = data::hdf5::Dataset::open(*file, "embeddings", data::hdf5::Element::kF32, {2});
  ASSERT_TRUE(embeddings.ok()) << embeddings.status();
  ASSERT_EQ(embeddings->rows(), 4);
  std::vector<float> values(8);
  ASSERT_TRUE(embeddings->read(0, 4, values.data()).ok());
  EXPECT_EQ(values, (std::vector<float>{1, 2, 2, 3, 3, 4, 4, 5}));
  absl::StatusOr<std::string> about = file->read_json_attribute("plm_caption");
  ASSERT_TRUE(about.ok());
  EXPECT_THAT(*about, ::testing::HasSubstr("\"dim\":2"));

  // Merging again (a rerun, or plm caption --merge) gives the same bytes.
  const std::vector<std::string> first = lines_of(out);
  ASSERT_TRUE(merge_parts(items, out, std::nullopt).ok());
  EXPECT_EQ(lines_of(out), first);
}

TEST(Merge, MissingItemsWriteNothing) {
  const auto dir = testing::fresh_temp_dir();
  const std::filesystem::path out = dir / "captions.jsonl";
  write_part(part_path(out, 0), {caption("a", 1)});
  const absl::StatusOr<MergeSummary> s = merge_parts(items_named({"a", "b", "c"}), out, dir / "emb.h5");
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.status().message()), ::testing::HasSubstr("2 of 3 items have no line in"));
  EXPECT_THAT(std::string(s.status().message()), ::testing::HasSubstr("(e.g. b, c)"));
  EXPECT_FALSE(std::filesystem::exists(out));
  EXPECT_FALSE(std::filesystem::exists(dir / "emb.h5"));
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    EXPECT_THAT(entry.path().filename().string(), ::testing::Not(::testing::HasSubstr(".tmp-")));
  }
}

}  // namespace
}  // namespace plm::caption
