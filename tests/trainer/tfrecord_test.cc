#include "trainer/tfrecord.h"

#include <gtest/gtest.h>

#include <string>

namespace plm::trainer {
namespace {

TEST(Crc32c, PublishedVectors) {
  // RFC 3720 (iSCSI) B.4 and the usual check value.
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(crc32c(std::string(32, '\xFF')), 0x62A8AB43u);
  std::string ascending;
  for (int i = 0; i < 32; ++i) ascending.push_back(static_cast<char>(i));
  EXPECT_EQ(crc32c(ascending), 0x46DD794Eu);
  EXPECT_EQ(crc32c(""), 0u);
}

TEST(Crc32c, MaskIsTensorFlows) {
  const uint32_t crc = crc32c("123456789");
  EXPECT_EQ(masked_crc32c("123456789"), ((crc >> 15) | (crc << 17)) + 0xa282ead8u);
}

TEST(TfRecord, FrameLayout) {
  const std::string data = "hello";
  const std::string record = tfrecord_frame(data);
  ASSERT_EQ(record.size(), 8 + 4 + data.size() + 4);
  EXPECT_EQ(record.substr(0, 8), std::string("\x05\0\0\0\0\0\0\0", 8));
  auto le32 = [&](size_t at) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(record[at + i]);
    return v;
  };
  EXPECT_EQ(le32(8), masked_crc32c(record.substr(0, 8)));
  EXPECT_EQ(record.substr(12, 5), data);
  EXPECT_EQ(le32(17), masked_crc32c(data));
}

}  // namespace
}  // namespace plm::trainer
