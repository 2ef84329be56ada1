#include "data/synthetic_shapes.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/check.h"

namespace plm::data {
namespace {

constexpr int kSubsamples = 4;  // per axis: 16 coverage samples a pixel

// Twice the signed area of (a, b, p): positive when p is left of a -> b in image coordinates (y down).
double edge(double ax, double ay, double bx, double by, double px, double py) {
  return (bx - ax) * (py - ay) - (by - ay) * (px - ax);
}

bool inside(const ShapeSprite& s, double x, double y) {
  const double dx = x - s.center_x, dy = y - s.center_y;
  switch (s.shape) {
    case ShapeKind::kCircle: return dx * dx + dy * dy <= s.radius * s.radius;
    case ShapeKind::kSquare: {
      const double half = 0.85 * s.radius;  // about the circle's area
      return std::abs(dx) <= half && std::abs(dy) <= half;
    }
    case ShapeKind::kTriangle: {
      // Apex up, base at the bottom of the bounding box.
      const double top_x = s.center_x, top_y = s.center_y - s.radius;
      const double left_x = s.center_x - s.radius, left_y = s.center_y + 0.8 * s.radius;
      const double right_x = s.center_x + s.radius, right_y = left_y;
      return edge(top_x, top_y, right_x, right_y, x, y) >= 0 && edge(right_x, right_y, left_x, left_y, x, y) >= 0 &&
             edge(left_x, left_y, top_x, top_y, x, y) >= 0;
    }
  }
  PLM_CHECK(false) << "unhandled ShapeKind " << static_cast<int>(s.shape);
  return false;
}

// The phrase among `values` whose name occurs first in `text` (lower case), if any.
template <typename Enum, size_t N>
std::optional<Enum> first_named(std::string_view text, const std::array<Enum, N>& values) {
  std::optional<Enum> found;
  size_t found_at = std::string_view::npos;
  for (const Enum value : values) {
    const size_t at = text.find(name(value));
    if (at < found_at) {
      found = value;
      found_at = at;
    }
  }
  return found;
}

}  // namespace

const char* name(ShapeKind shape) {
  switch (shape) {
    case ShapeKind::kCircle: return "circle";
    case ShapeKind::kSquare: return "square";
    case ShapeKind::kTriangle: return "triangle";
  }
  PLM_CHECK(false) << "unhandled enum value";
  return "";
}

const char* name(ShapeColour colour) {
  switch (colour) {
    case ShapeColour::kRed: return "red";
    case ShapeColour::kGreen: return "green";
    case ShapeColour::kBlue: return "blue";
    case ShapeColour::kYellow: return "yellow";
    case ShapeColour::kPurple: return "purple";
  }
  PLM_CHECK(false) << "unhandled enum value";
  return "";
}

const char* name(ImagePosition position) {
  switch (position) {
    case ImagePosition::kTopLeft: return "top left";
    case ImagePosition::kTopRight: return "top right";
    case ImagePosition::kBottomLeft: return "bottom left";
    case ImagePosition::kBottomRight: return "bottom right";
  }
  PLM_CHECK(false) << "unhandled enum value";
  return "";
}

const char* name(Motion motion) {
  switch (motion) {
    case Motion::kRight: return "moving right";
    case Motion::kLeft: return "moving left";
    case Motion::kUp: return "moving up";
    case Motion::kDown: return "moving down";
  }
  PLM_CHECK(false) << "unhandled enum value";
  return "";
}

Rgb8 base_rgb(ShapeColour colour) {
  switch (colour) {
    case ShapeColour::kRed: return {220, 40, 40};
    case ShapeColour::kGreen: return {40, 190, 70};
    case ShapeColour::kBlue: return {50, 90, 235};
    case ShapeColour::kYellow: return {240, 215, 40};
    case ShapeColour::kPurple: return {160, 60, 210};
  }
  PLM_CHECK(false) << "unhandled ShapeColour " << static_cast<int>(colour);
  return {};
}

RgbImage solid_image(int width, int height, Rgb8 rgb) {
  RgbImage image(width, height);
  for (size_t i = 0; i < image.pixels.size(); i += kRgbChannels) {
    image.pixels[i] = rgb.r;
    image.pixels[i + 1] = rgb.g;
    image.pixels[i + 2] = rgb.b;
  }
  return image;
}

void draw_shape(RgbImage& image, const ShapeSprite& sprite) {
  const int x0 = std::max(0, static_cast<int>(std::floor(sprite.center_x - sprite.radius)) - 1);
  const int x1 = std::min(image.width - 1, static_cast<int>(std::ceil(sprite.center_x + sprite.radius)) + 1);
  const int y0 = std::max(0, static_cast<int>(std::floor(sprite.center_y - sprite.radius)) - 1);
  const int y1 = std::min(image.height - 1, static_cast<int>(std::ceil(sprite.center_y + sprite.radius)) + 1);
  const uint8_t rgb[kRgbChannels] = {sprite.rgb.r, sprite.rgb.g, sprite.rgb.b};
  for (int y = y0; y <= y1; ++y) {
    uint8_t* row = image.row(y);
    for (int x = x0; x <= x1; ++x) {
      int covered = 0;
      for (int sy = 0; sy < kSubsamples; ++sy) {
        for (int sx = 0; sx < kSubsamples; ++sx) {
          covered += inside(sprite, x + (sx + 0.5) / kSubsamples, y + (sy + 0.5) / kSubsamples);
        }
      }
      if (covered == 0) continue;
      const double alpha = static_cast<double>(covered) / (kSubsamples * kSubsamples);
      for (int c = 0; c < kRgbChannels; ++c) {
        uint8_t& p = row[x * kRgbChannels + c];
        p = static_cast<uint8_t>(std::lround(p + alpha * (rgb[c] - p)));
      }
    }
  }
}

std::string describe(const ShapeAttributes& a) {
  std::string text = absl::StrCat(name(a.colour), " ", name(a.shape));
  if (a.position) absl::StrAppend(&text, ", ", name(*a.position));
  if (a.motion) absl::StrAppend(&text, " ", name(*a.motion));
  return text;
}

ParsedAttributes parse_attributes(std::string_view reply) {
  const std::string text = absl::AsciiStrToLower(absl::string_view(reply.data(), reply.size()));
  return {.shape = first_named(text, kShapeKinds),
          .colour = first_named(text, kShapeColours),
          .position = first_named(text, kImagePositions),
          .motion = first_named(text, kMotions)};
}

}  // namespace plm::data
