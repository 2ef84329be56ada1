#include "core/durable_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "tests/core/test_temp_dir.h"

namespace plm {
namespace {

using ::plm::testing::fresh_temp_dir;
using ::testing::HasSubstr;

std::string read_all(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

int count_entries(const std::filesystem::path& dir) {
  int entries = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir)) ++entries;
  return entries;
}

TEST(DurableFile, WriteReplacesAtomicallyAndLeavesNoTemporary) {
  const std::filesystem::path dir = fresh_temp_dir();
  ASSERT_TRUE(write_file_durably(dir / "a.json", "first").ok());
  ASSERT_TRUE(write_file_durably(dir / "a.json", "second, longer").ok());
  EXPECT_EQ(read_all(dir / "a.json"), "second, longer");
  EXPECT_EQ(count_entries(dir), 1);
  const absl::Status missing = write_file_durably(dir / "missing" / "a.json", "x");
  EXPECT_FALSE(missing.ok());
  EXPECT_THAT(missing.message(), HasSubstr("missing/a.json"));
}

TEST(DurableFile, WriterShowsNothingUntilCommitAndCleansUpWhenAbandoned) {
  const std::filesystem::path dir = fresh_temp_dir();
  ASSERT_TRUE(write_file_durably(dir / "out.jsonl", "old\n").ok());
  {
    absl::StatusOr<DurableFileWriter> writer = DurableFileWriter::create(dir / "out.jsonl");
    ASSERT_TRUE(writer.ok()) << writer.status();
    ASSERT_TRUE(writer->write("new ").ok());
    EXPECT_EQ(read_all(dir / "out.jsonl"), "old\n");  // streamed bytes stay in the temporary file
    EXPECT_EQ(count_entries(dir), 2);
  }  // abandoned: the temporary file goes, the old content stays
  EXPECT_EQ(read_all(dir / "out.jsonl"), "old\n");
  EXPECT_EQ(count_entries(dir), 1);

  absl::StatusOr<DurableFileWriter> writer = DurableFileWriter::create(dir / "out.jsonl");
  ASSERT_TRUE(writer.ok());
  DurableFileWriter moved = std::move(*writer);  // the moved-from writer must not remove anything
  const char bytes[] = {'n', 'e', 'w', '\n'};
  ASSERT_TRUE(moved.write(bytes, sizeof(bytes)).ok());
  ASSERT_TRUE(moved.commit().ok());
  EXPECT_EQ(read_all(dir / "out.jsonl"), "new\n");
  EXPECT_EQ(count_entries(dir), 1);
}

TEST(DurableFile, RenameDurably) {
  const std::filesystem::path dir = fresh_temp_dir();
  std::filesystem::create_directories(dir / "from.tmp");
  ASSERT_TRUE(rename_durably(dir / "from.tmp", dir / "to").ok());
  EXPECT_TRUE(std::filesystem::is_directory(dir / "to"));
  const absl::Status again = rename_durably(dir / "from.tmp", dir / "again");
  EXPECT_FALSE(again.ok());
  EXPECT_THAT(again.message(), HasSubstr("again"));
  EXPECT_THAT(again.message(), HasSubstr("rename"));
}

}  // namespace
}  // namespace plm
