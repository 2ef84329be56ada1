// The world of the synthetic data set (data/synthetic_dataset.h): one coloured shape on a plain background,
// its vocabulary (shape, colour, where it sits in an image, which way it moves in a video), the rasterizer
// (4x4 supersampled coverage, so edges are anti-aliased as in a real picture), the one-sentence description
// the model is taught, and the parser that reads those attributes back out of a model's reply.
// Stateless and thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "data/rgb_image.h"

namespace plm::data {

enum class ShapeKind { kCircle, kSquare, kTriangle };
enum class ShapeColour { kRed, kGreen, kBlue, kYellow, kPurple };
enum class ImagePosition { kTopLeft, kTopRight, kBottomLeft, kBottomRight };  // the quadrant of the centre
enum class Motion { kRight, kLeft, kUp, kDown };                              // from one edge towards the other

inline constexpr std::array kShapeKinds = {ShapeKind::kCircle, ShapeKind::kSquare, ShapeKind::kTriangle};
inline constexpr std::array kShapeColours = {ShapeColour::kRed, ShapeColour::kGreen, ShapeColour::kBlue,
                                             ShapeColour::kYellow, ShapeColour::kPurple};
inline constexpr std::array kImagePositions = {ImagePosition::kTopLeft, ImagePosition::kTopRight,
                                               ImagePosition::kBottomLeft, ImagePosition::kBottomRight};
inline constexpr std::array kMotions = {Motion::kRight, Motion::kLeft, Motion::kUp, Motion::kDown};

// The words of the descriptions: "circle", "red", "top left", "moving right".
const char* name(ShapeKind shape);
const char* name(ShapeColour colour);
const char* name(ImagePosition position);
const char* name(Motion motion);

struct Rgb8 {
  uint8_t r = 0, g = 0, b = 0;
};
Rgb8 base_rgb(ShapeColour colour);  // the colour before per-item jitter

// A shape with its centre at (center_x, center_y) in pixels and `radius` the half-width of its bounding box.
struct ShapeSprite {
  ShapeKind shape = ShapeKind::kCircle;
  Rgb8 rgb;
  double center_x = 0, center_y = 0;
  double radius = 1;
};

RgbImage solid_image(int width, int height, Rgb8 rgb);
// Blends the sprite over `image` by its coverage of each pixel (parts outside the image are clipped).
void draw_shape(RgbImage& image, const ShapeSprite& sprite);

// What one picture or clip shows; `position` is set for images, `motion` for videos.
struct ShapeAttributes {
  ShapeKind shape = ShapeKind::kCircle;
  ShapeColour colour = ShapeColour::kRed;
  std::optional<ImagePosition> position;
  std::optional<Motion> motion;
};

// The answer the model is taught, terse so that few tokens are labelled: "red circle, top left" (an image),
// "red circle moving right" (a video).
std::string describe(const ShapeAttributes& attributes);

// The attributes a free-text reply names: each field is the first vocabulary word (or phrase) of its kind in
// the lower-cased text, or unset when there is none. describe() followed by this is the identity.
struct ParsedAttributes {
  std::optional<ShapeKind> shape;
  std::optional<ShapeColour> colour;
  std::optional<ImagePosition> position;
  std::optional<Motion> motion;
};
ParsedAttributes parse_attributes(std::string_view reply);

}  // namespace plm::data
