#include "trainer/file_digest.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "core/durable_file.h"
#include "tests/model/model_test_util.h"

namespace plm::trainer {
namespace {

using ::plm::model::testing::FailsWith;
using ::plm::model::testing::fresh_temp_dir;

TEST(FileDigest, IsSizeAndZlibCrc32) {
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

}  // namespace
}  // namespace plm::trainer
