// The demo's captioning step without the child process: the input list plm caption reads back (ids, absolute
// paths, each clip's question as its prompt), and plm caption's output turned into scored predictions in the
// examples' order, with a missing or failed clip named.
#include "demo/captioning.h"

#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "caption/caption_inputs.h"
#include "caption/caption_record.h"
#include "tests/core/test_temp_dir.h"

namespace plm::demo {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

data::SynthExample clip(const fs::path& data_dir, const std::string& name, data::ShapeKind shape,
                        data::ShapeColour colour, data::Motion motion) {
  return {.kind = data::MediaKind::kVideo,
          .media = data_dir / "videos" / name,
          .system = "Answer in a few words.",
          .question = "Describe the shape and how it moves.",
          .answer = "",
          .attributes = {.shape = shape, .colour = colour, .position = std::nullopt, .motion = motion}};
}

void write_records(const fs::path& path, const std::vector<caption::CaptionRecord>& records) {
  std::ofstream out(path);
  for (const caption::CaptionRecord& r : records) out << caption::record_line(r, caption::LineFields::kOutput) << "\n";
}

caption::CaptionRecord captioned(const std::string& id, const std::string& caption) {
  caption::CaptionRecord r;
  r.id = id;
  r.path = "/somewhere/" + id;
  r.caption = caption;
  return r;
}

TEST(DemoCaptioning, InputListGivesEachClipItsIdPathAndQuestion) {
  const fs::path dir = plm::testing::fresh_temp_dir();
  const std::vector<data::SynthExample> clips = {
      clip(dir / "data", "test-000.mp4", data::ShapeKind::kCircle, data::ShapeColour::kRed, data::Motion::kRight),
      clip(dir / "data", "test-001.mp4", data::ShapeKind::kSquare, data::ShapeColour::kBlue, data::Motion::kUp)};
  ASSERT_TRUE(write_caption_inputs(clips, dir / "data", dir / "inputs.jsonl").ok());

  const absl::StatusOr<std::vector<caption::CaptionItem>> items = caption::read_caption_inputs(dir / "inputs.jsonl");
  ASSERT_TRUE(items.ok()) << items.status();
  ASSERT_EQ(items->size(), 2u);
  EXPECT_EQ((*items)[0].id, "videos/test-000.mp4");
  EXPECT_EQ((*items)[1].id, "videos/test-001.mp4");
  EXPECT_EQ((*items)[1].path, (dir / "data" / "videos" / "test-001.mp4").string());
  EXPECT_EQ((*items)[0].prompt, "Describe the shape and how it moves.");
  EXPECT_EQ((*items)[0].type, caption::MediaType::kVideo);
}

TEST(DemoCaptioning, CaptionsBecomePredictionsInTheExamplesOrder) {
  const fs::path dir = plm::testing::fresh_temp_dir();
  const std::vector<data::SynthExample> clips = {
      clip(dir, "a.mp4", data::ShapeKind::kCircle, data::ShapeColour::kRed, data::Motion::kRight),
      clip(dir, "b.mp4", data::ShapeKind::kSquare, data::ShapeColour::kBlue, data::Motion::kUp)};
  write_records(dir / "captions.jsonl", {captioned("videos/b.mp4", "blue circle moving up"),
                                         captioned("videos/a.mp4", "red circle moving right")});

  const absl::StatusOr<std::vector<Prediction>> predictions = read_captions(dir / "captions.jsonl", clips, dir);
  ASSERT_TRUE(predictions.ok()) << predictions.status();
  ASSERT_EQ(predictions->size(), 2u);
  EXPECT_EQ((*predictions)[0].example.media, clips[0].media);
  EXPECT_EQ((*predictions)[0].reply, "red circle moving right");
  EXPECT_EQ(wrong_attributes((*predictions)[0]), "");
  EXPECT_EQ((*predictions)[1].reply, "blue circle moving up");
  EXPECT_EQ(wrong_attributes((*predictions)[1]), "shape");
}

TEST(DemoCaptioning, AMissingOrFailedClipIsAnErrorNamingIt) {
  const fs::path dir = plm::testing::fresh_temp_dir();
  const std::vector<data::SynthExample> clips = {
      clip(dir, "a.mp4", data::ShapeKind::kCircle, data::ShapeColour::kRed, data::Motion::kRight),
      clip(dir, "b.mp4", data::ShapeKind::kSquare, data::ShapeColour::kBlue, data::Motion::kUp)};
  write_records(dir / "missing.jsonl", {captioned("videos/a.mp4", "red circle moving right")});
  const absl::StatusOr<std::vector<Prediction>> missing = read_captions(dir / "missing.jsonl", clips, dir);
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("no line for videos/b.mp4"));

  caption::CaptionRecord failed = captioned("videos/b.mp4", "");
  failed.error = "cannot open as a video";
  write_records(dir / "failed.jsonl", {captioned("videos/a.mp4", "red circle moving right"), failed});
  const absl::StatusOr<std::vector<Prediction>> error = read_captions(dir / "failed.jsonl", clips, dir);
  ASSERT_FALSE(error.ok());
  EXPECT_THAT(error.status().message(), HasSubstr("videos/b.mp4 was not captioned: cannot open as a video"));
  EXPECT_THAT(error.status().message(), HasSubstr("failed.jsonl"));

  std::ofstream(dir / "bad.jsonl") << "not json\n";
  const absl::StatusOr<std::vector<Prediction>> bad = read_captions(dir / "bad.jsonl", clips, dir);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("bad.jsonl:1"));
}

}  // namespace
}  // namespace plm::demo
