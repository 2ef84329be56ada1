#include "trainer/durable_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "data/read_file.h"
#include "tests/model/model_test_util.h"

namespace plm::trainer {
namespace {

using ::plm::model::testing::FailsWith;
using ::plm::model::testing::fresh_temp_dir;

TEST(DurableFile, WriteReplacesAtomicallyAndLeavesNoTemporary) {
  const std::filesystem::path dir = fresh_temp_dir();
  ASSERT_TRUE(write_file_durably(dir / "a.json", "first").ok());
  ASSERT_TRUE(write_file_durably(dir / "a.json", "second, longer").ok());
  EXPECT_EQ(*data::read_file(dir / "a.json"), "second, longer");
  int entries = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir)) ++entries;
  EXPECT_EQ(entries, 1);
  EXPECT_THAT(write_file_durably(dir / "missing" / "a.json", "x"), FailsWith("missing/a.json"));
}

TEST(DurableFile, DigestIsSizeAndZlibCrc32) {
  const std::filesystem::path dir = fresh_temp_dir();
  ASSERT_TRUE(write_file_durably(dir / "check", "123456789").ok());
  const absl::StatusOr<FileDigest> digest = digest_file(dir / "check");
  ASSERT_TRUE(digest.ok()) << digest.status();
  EXPECT_EQ(digest->bytes, 9u);
  EXPECT_EQ(digest->crc32, 0xCBF43926u);  // the CRC-32 check value

  const std::string big(3 << 20, 'z');  // more than one read chunk
  ASSERT_TRUE(write_file_durably(dir / "big", big).ok());
  const absl::StatusOr<FileDigest> big_digest = digest_file(dir / "big");
  ASSERT_TRUE(big_digest.ok());
  EXPECT_EQ(big_digest->bytes, big.size());
  EXPECT_THAT(digest_file(dir / "nope"), FailsWith("nope", "open"));
}

TEST(DurableFile, RenameDurably) {
  const std::filesystem::path dir = fresh_temp_dir();
  std::filesystem::create_directories(dir / "from.tmp");
  ASSERT_TRUE(rename_durably(dir / "from.tmp", dir / "to").ok());
  EXPECT_TRUE(std::filesystem::is_directory(dir / "to"));
  EXPECT_THAT(rename_durably(dir / "from.tmp", dir / "again"), FailsWith("again", "rename"));
}

}  // namespace
}  // namespace plm::trainer
