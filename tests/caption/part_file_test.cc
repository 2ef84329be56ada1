// The journal's crash rules: a torn last line is ignored by readers and cut off by the owner; lines appended after
// the repair follow the last whole line; garbage in the middle is data loss, named by file and line.
#include "caption/part_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "tests/core/test_temp_dir.h"

namespace plm::caption {
namespace {

CaptionRecord record(const std::string& id) {
  return {.id = id, .path = "/v/" + id + ".mp4", .error = std::nullopt, .caption = "caption of " + id, .frames = 4,
          .prompt_tokens = 40, .completion_tokens = 5, .seconds = 0.5, .embedding = {}};
}

std::string read_all(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> scanned_ids(const std::filesystem::path& path, bool repair, int64_t* torn = nullptr) {
  std::vector<std::string> ids;
  const absl::StatusOr<int64_t> t = scan_part(path, repair, [&](CaptionRecord&& r, const LineSpan&) { ids.push_back(r.id); });
  EXPECT_TRUE(t.ok()) << t.status();
  if (torn != nullptr) *torn = t.value_or(-1);
  return ids;
}

TEST(PartFile, AppendsWholeLines) {
  const auto part = testing::fresh_temp_dir() / "out.jsonl.rank-0";
  {
    absl::StatusOr<std::unique_ptr<PartWriter>> writer = PartWriter::open(part);
    ASSERT_TRUE(writer.ok()) << writer.status();
    ASSERT_TRUE((*writer)->append({record("a"), record("b")}).ok());
    ASSERT_TRUE((*writer)->append({}).ok());
    ASSERT_TRUE((*writer)->append({record("c")}).ok());
  }
  EXPECT_EQ(scanned_ids(part, false), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(read_all(part).back(), '\n');
}

TEST(PartFile, TornLastLineIsIgnoredByReadersAndCutOffByTheOwner) {
  const auto part = testing::fresh_temp_dir() / "out.jsonl.rank-1";
  const std::string whole = record_line(record("a"), LineFields::kPart) + "\n" + record_line(record("b"), LineFields::kPart) + "\n";
  const std::string torn_line = record_line(record("c"), LineFields::kPart).substr(0, 25);  // killed mid-write
  std::ofstream(part, std::ios::binary) << whole << torn_line;

  int64_t torn = 0;
  EXPECT_EQ(scanned_ids(part, /*repair=*/false, &torn), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(torn, static_cast<int64_t>(torn_line.size()));
  EXPECT_EQ(read_all(part), whole + torn_line) << "a reader that is not the owner leaves the file alone";

  EXPECT_EQ(scanned_ids(part, /*repair=*/true, &torn), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(read_all(part), whole);
  absl::StatusOr<std::unique_ptr<PartWriter>> writer = PartWriter::open(part);
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE((*writer)->append({record("c")}).ok());
  EXPECT_EQ(scanned_ids(part, false, &torn), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(torn, 0);
}

TEST(PartFile, GarbageInTheMiddleIsDataLoss) {
  const auto part = testing::fresh_temp_dir() / "out.jsonl.rank-0";
  std::ofstream(part, std::ios::binary) << record_line(record("a"), LineFields::kPart) << "\n{\"id\": \"b\"\n"
                                        << record_line(record("c"), LineFields::kPart) << "\n";
  const absl::StatusOr<int64_t> scanned = scan_part(part, true, [](CaptionRecord&&, const LineSpan&) {});
  EXPECT_EQ(scanned.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(scanned.status().message()), ::testing::HasSubstr("out.jsonl.rank-0:2: not a caption record"));
}

TEST(PartFile, FinishedIdsComeFromEveryPart) {
  const auto dir = testing::fresh_temp_dir();
  const std::filesystem::path out = dir / "out.jsonl";
  for (int r : {0, 1, 3}) {
    auto writer = PartWriter::open(part_path(out, r));
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->append({record(absl::StrCat("r", r))}).ok());
  }
  std::ofstream(dir / "out.jsonl.rank-01") << "not ours\n";
  std::ofstream(dir / "out.jsonl.rank-2.tmp-5") << "not ours\n";
  EXPECT_EQ(list_parts(out), (std::vector<std::filesystem::path>{part_path(out, 0), part_path(out, 1), part_path(out, 3)}));
  const absl::StatusOr<absl::flat_hash_set<std::string>> ids = finished_ids(out, part_path(out, 2));
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(*ids, (absl::flat_hash_set<std::string>{"r0", "r1", "r3"}));
}

}  // namespace
}  // namespace plm::caption
