#include "data/image_encode.h"

#include <png.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace plm::data {
namespace {

struct PngSink {
  std::string bytes;
  std::string error;
};

void png_on_error(png_structp png, png_const_charp message) {
  static_cast<PngSink*>(png_get_error_ptr(png))->error = message;
  png_longjmp(png, 1);
}

void png_on_warning(png_structp, png_const_charp) {}

void png_on_write(png_structp png, png_bytep data, size_t num_bytes) {
  static_cast<PngSink*>(png_get_io_ptr(png))->bytes.append(reinterpret_cast<const char*>(data), num_bytes);
}

void png_on_flush(png_structp) {}

// libpng reports errors by longjmp: nothing with a destructor lives in this frame.
bool write_png_rows(png_structp png, png_infop info, const RgbImage& image) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_IHDR(png, info, static_cast<png_uint_32>(image.width), static_cast<png_uint_32>(image.height), 8,
               PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < image.height; ++y) png_write_row(png, image.row(y));
  png_write_end(png, nullptr);
  return true;
}

}  // namespace

absl::StatusOr<std::string> encode_png(const RgbImage& image) {
  PngSink sink;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &sink, png_on_error, png_on_warning);
  if (png == nullptr) return absl::InternalError("libpng: png_create_write_struct failed");
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_write_struct(&png, nullptr);
    return absl::InternalError("libpng: png_create_info_struct failed");
  }
  png_set_write_fn(png, &sink, png_on_write, png_on_flush);
  const bool ok = write_png_rows(png, info, image);
  png_destroy_write_struct(&png, &info);
  if (!ok) return absl::InternalError(absl::StrCat("libpng: ", sink.error));
  return std::move(sink.bytes);
}

absl::Status write_png_file(const std::filesystem::path& path, const RgbImage& image) {
  absl::StatusOr<std::string> png = encode_png(image);
  if (!png.ok()) return absl::Status(png.status().code(), absl::StrCat(path.string(), ": ", png.status().message()));
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(png->data(), static_cast<std::streamsize>(png->size()));
  out.close();
  if (!out) return absl::InternalError(absl::StrCat(path.string(), ": write failed: ", std::strerror(errno)));
  return absl::OkStatus();
}

}  // namespace plm::data
