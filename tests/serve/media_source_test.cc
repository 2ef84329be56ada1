// Media sources: data: URLs (base64 and %-encoded), files confined to the media root after symlinks are
// resolved (no "..", no absolute path or link out of it), remote URLs refused, and scratch files removed.
#include "serve/media_source.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "tests/core/test_temp_dir.h"

namespace plm::serve {
namespace {

using ::testing::HasSubstr;

TEST(DataUrl, DecodesBase64AndPercentEncoding) {
  absl::StatusOr<DataUrl> u = parse_data_url("data:image/PNG;name=x;base64,aGVsbG8=");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->media_type, "image/png");
  EXPECT_EQ(u->bytes, "hello");
  u = parse_data_url("data:text/plain,a%20b");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->bytes, "a b");
  EXPECT_FALSE(parse_data_url("data:image/png;base64,###").ok());
  EXPECT_FALSE(parse_data_url("data:image/png;base64").ok());
  EXPECT_FALSE(parse_data_url("data:image/png,%4").ok());
  EXPECT_FALSE(parse_data_url("data:image/png;base64,").ok());
}

class MediaRoot : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = plm::testing::fresh_temp_dir();
    root_ = base_ / "root";
    std::filesystem::create_directories(root_ / "sub");
    std::ofstream(root_ / "sub" / "a.png") << "x";
    std::ofstream(base_ / "secret.png") << "s";
    std::filesystem::create_symlink(base_ / "secret.png", root_ / "link_out.png");
    std::filesystem::create_symlink(root_ / "sub" / "a.png", root_ / "link_in.png");
  }
  std::filesystem::path base_, root_;
};

TEST_F(MediaRoot, FilesInsideResolveAndEverythingElseIsRefused) {
  const std::filesystem::path inside = std::filesystem::canonical(root_ / "sub" / "a.png");
  EXPECT_EQ(*confined_media_file("sub/a.png", root_), inside);
  EXPECT_EQ(*confined_media_file(inside.string(), root_), inside);
  EXPECT_EQ(*confined_media_file("file://" + inside.string(), root_), inside);
  EXPECT_EQ(*confined_media_file("link_in.png", root_), inside);
  EXPECT_EQ(confined_media_file("../secret.png", root_).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(confined_media_file("sub/../../secret.png", root_).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(confined_media_file((base_ / "secret.png").string(), root_).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(confined_media_file("link_out.png", root_).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(confined_media_file("missing.png", root_).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(confined_media_file("sub/missing.png", root_).status().code(), absl::StatusCode::kNotFound);
  // Outside, an absent file is refused like a present one: the status does not reveal what exists there.
  EXPECT_EQ(confined_media_file("../missing.png", root_).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(confined_media_file((base_ / "missing.png").string(), root_).status().code(),
            absl::StatusCode::kPermissionDenied);
  std::filesystem::create_directory_symlink(base_, root_ / "dir_out");
  EXPECT_EQ(confined_media_file("dir_out/secret.png", root_).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(confined_media_file("dir_out/missing.png", root_).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(confined_media_file("sub", root_).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(confined_media_file("file://otherhost/etc/passwd", root_).ok());
}

TEST_F(MediaRoot, LocalizeRewritesPartsAndRemovesScratchFiles) {
  std::filesystem::create_directories(base_ / "scratch");
  const MediaPolicy policy{.media_root = root_, .scratch_dir = base_ / "scratch", .max_media_items = 2};
  std::vector<data::ChatMessage> messages = {{.role = "user", .parts = {
      {.type = data::ContentPart::Type::kImage, .text = {}, .url = "data:image/png;base64,aGVsbG8="},
      {.type = data::ContentPart::Type::kVideo, .text = {}, .url = "sub/a.png"},
      {.type = data::ContentPart::Type::kText, .text = "hi", .url = {}}}}};
  std::string scratch;
  {
    absl::StatusOr<LocalMedia> local = LocalMedia::localize(messages, policy);
    ASSERT_TRUE(local.ok()) << local.status();
    scratch = messages[0].parts[0].url;
    std::ifstream in(scratch);
    std::string bytes;
    in >> bytes;
    EXPECT_EQ(bytes, "hello");
    EXPECT_EQ(messages[0].parts[1].url, std::filesystem::canonical(root_ / "sub" / "a.png").string());
    EXPECT_EQ(local->client_message(scratch + ": bad PNG header"), "image 0 (data: URL): bad PNG header");
  }
  EXPECT_FALSE(std::filesystem::exists(scratch));
}

TEST_F(MediaRoot, LocalizeRefusalsNameTheItem) {
  const MediaPolicy policy{.media_root = root_, .scratch_dir = base_, .max_media_items = 1};
  const auto refuse = [&](const std::string& url, data::ContentPart::Type type = data::ContentPart::Type::kImage) {
    std::vector<data::ChatMessage> m = {{.role = "user", .parts = {{.type = type, .text = {}, .url = url}}}};
    return LocalMedia::localize(m, policy).status();
  };
  EXPECT_THAT(std::string(refuse("https://example.com/cat.png").message()), HasSubstr("image 0: https:// URLs are not fetched"));
  EXPECT_THAT(std::string(refuse("data:video/mp4;base64,aGVsbG8=").message()), HasSubstr("where an image/* type"));
  EXPECT_EQ(refuse("../secret.png").code(), absl::StatusCode::kPermissionDenied);
  const MediaPolicy no_root{.media_root = std::nullopt, .scratch_dir = base_, .max_media_items = 4};
  std::vector<data::ChatMessage> m = {{.role = "user", .parts = {{.type = data::ContentPart::Type::kImage, .text = {}, .url = "sub/a.png"}}}};
  EXPECT_THAT(std::string(LocalMedia::localize(m, no_root).status().message()), HasSubstr("no --media-root"));
  std::vector<data::ChatMessage> two = {{.role = "user", .parts = {
      {.type = data::ContentPart::Type::kImage, .text = {}, .url = "sub/a.png"},
      {.type = data::ContentPart::Type::kImage, .text = {}, .url = "sub/a.png"}}}};
  EXPECT_EQ(LocalMedia::localize(two, policy).status().code(), absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace plm::serve
