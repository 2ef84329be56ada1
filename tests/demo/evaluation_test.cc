#include "demo/evaluation.h"

#include <gtest/gtest.h>

namespace plm::demo {
namespace {

using data::ImagePosition;
using data::MediaKind;
using data::Motion;
using data::ShapeColour;
using data::ShapeKind;

Prediction image(ShapeKind shape, ShapeColour colour, ImagePosition position, const std::string& reply) {
  Prediction p;
  p.example.kind = MediaKind::kImage;
  p.example.attributes = {.shape = shape, .colour = colour, .position = position, .motion = std::nullopt};
  p.reply = reply;
  p.parsed = data::parse_attributes(reply);
  return p;
}

Prediction video(ShapeKind shape, ShapeColour colour, Motion motion, const std::string& reply) {
  Prediction p;
  p.example.kind = MediaKind::kVideo;
  p.example.attributes = {.shape = shape, .colour = colour, .position = std::nullopt, .motion = motion};
  p.reply = reply;
  p.parsed = data::parse_attributes(reply);
  return p;
}

TEST(Evaluation, ScoresEachAttributeOverTheExamplesThatHaveIt) {
  const std::vector<Prediction> predictions = {
      image(ShapeKind::kCircle, ShapeColour::kRed, ImagePosition::kTopLeft, "red circle, top left"),
      image(ShapeKind::kSquare, ShapeColour::kBlue, ImagePosition::kBottomRight, "blue circle, top right"),
      video(ShapeKind::kTriangle, ShapeColour::kGreen, Motion::kUp, "green triangle moving down"),
      video(ShapeKind::kCircle, ShapeColour::kPurple, Motion::kLeft, "something else"),
  };
  const std::vector<AttributeScore> scores = score(predictions);
  ASSERT_EQ(scores.size(), 4u);
  const struct {
    const char* attribute;
    int64_t correct, total;
    double chance;
  } expected[] = {
      {"shape", 2, 4, 1.0 / 3}, {"colour", 3, 4, 1.0 / 5}, {"position", 1, 2, 1.0 / 4}, {"motion", 0, 2, 1.0 / 4}};
  for (size_t i = 0; i < scores.size(); ++i) {
    EXPECT_EQ(scores[i].attribute, expected[i].attribute);
    EXPECT_EQ(scores[i].correct, expected[i].correct) << expected[i].attribute;
    EXPECT_EQ(scores[i].total, expected[i].total) << expected[i].attribute;
    EXPECT_DOUBLE_EQ(scores[i].chance, expected[i].chance) << expected[i].attribute;
  }
  EXPECT_DOUBLE_EQ(scores[0].accuracy(), 0.5);
}

TEST(Evaluation, WrongAttributesNamesWhatTheReplyMissed) {
  EXPECT_EQ(
      wrong_attributes(image(ShapeKind::kCircle, ShapeColour::kRed, ImagePosition::kTopLeft, "red circle, top left")),
      "");
  EXPECT_EQ(wrong_attributes(
                image(ShapeKind::kSquare, ShapeColour::kBlue, ImagePosition::kBottomRight, "blue circle, top right")),
            "shape, position");
  EXPECT_EQ(wrong_attributes(video(ShapeKind::kCircle, ShapeColour::kPurple, Motion::kLeft, "?")),
            "shape, colour, motion");
}

}  // namespace
}  // namespace plm::demo
