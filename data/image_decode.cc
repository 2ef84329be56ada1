// JPEG through the TurboJPEG API, PNG through libpng, the EXIF orientation read by hand. libpng reports
// errors by longjmp: the functions that call setjmp hold only trivially destructible locals, and every
// buffer is allocated by their callers (a longjmp must not skip a destructor).
#include "data/image_decode.h"

#include <png.h>
#include <turbojpeg.h>

#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/status_macros.h"
#include "data/read_file.h"

namespace plm::data {
namespace {

constexpr uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
constexpr int kExifOrientationTag = 0x0112;
constexpr size_t kJpegExifHeaderBytes = 6;  // "Exif\0\0" before the TIFF block in an APP1 segment

absl::Status check_size(const std::string& name, int64_t width, int64_t height, const ImageDecodeLimits& limits) {
  if (width <= 0 || height <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": image has no pixels (", width, "x", height, ")"));
  }
  if (width * height > limits.max_pixels) {
    return absl::ResourceExhaustedError(absl::StrCat(name, ": image is ", width, "x", height, " = ", width * height,
                                                     " pixels, more than the limit of ", limits.max_pixels));
  }
  return absl::OkStatus();
}

// ---- EXIF ------------------------------------------------------------------------------------------------

// Reads TIFF integers in the block's byte order; out-of-range reads fail instead of reading past the end.
class TiffReader {
 public:
  TiffReader(const uint8_t* data, size_t size) : data_(data), size_(size) {
    if (size >= 2 && data[0] == data[1] && (data[0] == 'I' || data[0] == 'M')) little_endian_ = data[0] == 'I';
    else valid_ = false;
  }
  bool valid() const { return valid_; }
  bool u16(size_t offset, uint32_t* value) const { return read(offset, 2, value); }
  bool u32(size_t offset, uint32_t* value) const { return read(offset, 4, value); }

 private:
  bool read(size_t offset, size_t num_bytes, uint32_t* value) const {
    if (offset > size_ || size_ - offset < num_bytes) return false;
    *value = 0;
    for (size_t i = 0; i < num_bytes; ++i) {
      const uint32_t byte = data_[offset + (little_endian_ ? num_bytes - 1 - i : i)];
      *value = (*value << 8) | byte;
    }
    return true;
  }
  const uint8_t* data_;
  size_t size_;
  bool little_endian_ = true;
  bool valid_ = true;
};

// The first APP1 segment before the scan data (the marker libjpeg would have saved first), or empty.
std::string_view find_jpeg_app1(std::string_view jpeg) {
  constexpr uint8_t kApp1 = 0xE1, kStartOfScan = 0xDA, kEndOfImage = 0xD9;
  size_t pos = 2;  // after SOI
  while (pos + 4 <= jpeg.size()) {
    if (static_cast<uint8_t>(jpeg[pos]) != 0xFF) return {};
    uint8_t marker = static_cast<uint8_t>(jpeg[pos + 1]);
    if (marker == 0xFF) {  // fill byte
      ++pos;
      continue;
    }
    if (marker == kStartOfScan || marker == kEndOfImage) return {};
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {  // markers without a length
      pos += 2;
      continue;
    }
    const size_t length = (static_cast<uint8_t>(jpeg[pos + 2]) << 8) | static_cast<uint8_t>(jpeg[pos + 3]);
    if (length < 2 || pos + 2 + length > jpeg.size()) return {};
    if (marker == kApp1) return jpeg.substr(pos + 4, length - 2);
    pos += 2 + length;
  }
  return {};
}

int jpeg_exif_orientation(std::string_view jpeg) {
  const std::string_view app1 = find_jpeg_app1(jpeg);
  if (app1.size() <= kJpegExifHeaderBytes) return 0;
  return exif_orientation_of_tiff(reinterpret_cast<const uint8_t*>(app1.data()) + kJpegExifHeaderBytes,
                                  app1.size() - kJpegExifHeaderBytes);
}

// ---- JPEG ------------------------------------------------------------------------------------------------

struct TjDeleter {
  void operator()(void* handle) const { tjDestroy(handle); }
};

// torchcodec's CMYK -> RGB (Adobe-inverted CMYK, as libjpeg returns it): k - round(k * (255 - c) / 255).
uint8_t cmyk_channel_to_rgb(int k, int cmy_inverted) {
  int v = k * cmy_inverted + 128;
  v = ((v >> 8) + v) >> 8;
  return static_cast<uint8_t>(std::clamp(k - v, 0, 255));
}

absl::StatusOr<RgbImage> decode_jpeg(std::string_view bytes, const std::string& name,
                                     const ImageDecodeLimits& limits) {
  std::unique_ptr<void, TjDeleter> handle(tjInitDecompress());
  if (!handle) return absl::InternalError(absl::StrCat(name, ": cannot create a TurboJPEG decoder"));
  auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  const unsigned long size = bytes.size();
  int width = 0, height = 0, subsampling = 0, colorspace = 0;
  if (tjDecompressHeader3(handle.get(), data, size, &width, &height, &subsampling, &colorspace) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": bad JPEG header: ", tjGetErrorStr2(handle.get())));
  }
  PLM_RETURN_IF_ERROR(check_size(name, width, height, limits));

  // libjpeg cannot turn CMYK/YCCK into RGB: decode to CMYK and convert, as torchcodec does.
  const bool is_cmyk = colorspace == TJCS_CMYK || colorspace == TJCS_YCCK;
  RgbImage image(width, height);
  std::vector<uint8_t> cmyk(is_cmyk ? static_cast<size_t>(width) * height * 4 : 0);
  // Flags 0: the accurate integer IDCT and fancy upsampling, libjpeg's defaults, which torchcodec keeps.
  const int result = tjDecompress2(handle.get(), data, size, is_cmyk ? cmyk.data() : image.pixels.data(), width,
                                   0, height, is_cmyk ? TJPF_CMYK : TJPF_RGB, 0);
  if (result != 0) {
    const std::string message = tjGetErrorStr2(handle.get());
    if (tjGetErrorCode(handle.get()) == TJERR_FATAL) {
      return absl::DataLossError(absl::StrCat(name, ": corrupt JPEG: ", message));
    }
    // A warning. torchcodec fails when libjpeg runs out of data and tolerates the others (for example
    // "extraneous bytes before marker"); TurboJPEG keeps the first warning's text.
    if (message.rfind("Premature end of JPEG file", 0) == 0) {
      return absl::DataLossError(absl::StrCat(name, ": truncated JPEG (", message, ")"));
    }
  }
  if (is_cmyk) {
    for (size_t i = 0; i < static_cast<size_t>(width) * height; ++i) {
      const uint8_t* p = &cmyk[i * 4];
      for (int c = 0; c < kRgbChannels; ++c) image.pixels[i * 3 + c] = cmyk_channel_to_rgb(p[3], 255 - p[c]);
    }
  }
  return apply_exif_orientation(std::move(image), jpeg_exif_orientation(bytes));
}

// ---- PNG -------------------------------------------------------------------------------------------------

struct PngSource {
  const uint8_t* data;
  size_t remaining;
  char error[256];
};

void png_on_error(png_structp png, png_const_charp message) {
  auto* source = static_cast<PngSource*>(png_get_error_ptr(png));
  std::snprintf(source->error, sizeof(source->error), "%s", message);
  png_longjmp(png, 1);
}

void png_on_warning(png_structp, png_const_charp) {}  // ancillary-chunk trouble; torchcodec ignores it too

void png_on_read(png_structp png, png_bytep out, size_t num_bytes) {
  auto* source = static_cast<PngSource*>(png_get_io_ptr(png));
  if (source->remaining < num_bytes) png_error(png, "file is truncated");
  std::memcpy(out, source->data, num_bytes);
  source->data += num_bytes;
  source->remaining -= num_bytes;
}

struct PngLayout {
  png_uint_32 width = 0;
  png_uint_32 height = 0;
  int num_passes = 1;
  int num_channels = 0;  // after the transformations; 3 expected
};

// Reads the chunks before the image data and asks libpng for 8-bit RGB rows (torchcodec's RGB mode).
bool png_read_layout(png_structp png, png_infop info, PngLayout* layout) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_info(png, info);
  int bit_depth = 0, color_type = 0, interlace = 0;
  png_get_IHDR(png, info, &layout->width, &layout->height, &bit_depth, &color_type, &interlace, nullptr, nullptr);
  if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  layout->num_passes = interlace == PNG_INTERLACE_ADAM7 ? png_set_interlace_handling(png) : 1;
  if (color_type != PNG_COLOR_TYPE_RGB) {
    const bool is_palette = color_type & PNG_COLOR_MASK_PALETTE;
    if (is_palette) png_set_palette_to_rgb(png);
    else if (!(color_type & PNG_COLOR_MASK_COLOR)) png_set_gray_to_rgb(png);
    // libpng 1.6.39 turns a palette's tRNS into an alpha channel; HF's decode keeps the palette colours.
    if ((color_type & PNG_COLOR_MASK_ALPHA) || (is_palette && png_get_valid(png, info, PNG_INFO_tRNS))) {
      png_set_strip_alpha(png);
    }
  }
  if (bit_depth == 16) png_set_scale_16(png);
  png_read_update_info(png, info);
  layout->num_channels = png_get_channels(png, info);
  return true;
}

bool png_read_pixels(png_structp png, const PngLayout& layout, uint8_t* pixels) {
  if (setjmp(png_jmpbuf(png))) return false;
  const size_t row_bytes = static_cast<size_t>(layout.width) * kRgbChannels;
  for (int pass = 0; pass < layout.num_passes; ++pass) {
    for (png_uint_32 y = 0; y < layout.height; ++y) png_read_row(png, pixels + y * row_bytes, nullptr);
  }
  return true;
}

// Only an eXIf chunk before the image data counts: torchcodec never reads past it (no png_read_end).
int png_exif_orientation(png_structp png, png_infop info) {
  png_uint_32 size = 0;
  png_bytep exif = nullptr;
  if (!png_get_valid(png, info, PNG_INFO_eXIf) || png_get_eXIf_1(png, info, &size, &exif) == 0) return 0;
  return exif == nullptr ? 0 : exif_orientation_of_tiff(exif, size);
}

absl::StatusOr<RgbImage> decode_png(std::string_view bytes, const std::string& name,
                                    const ImageDecodeLimits& limits) {
  PngSource source{reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), ""};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &source, png_on_error, png_on_warning);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  struct Cleanup {
    png_structp* png;
    png_infop* info;
    ~Cleanup() { png_destroy_read_struct(png, info, nullptr); }
  } cleanup{&png, &info};
  if (!info) return absl::InternalError(absl::StrCat(name, ": cannot create a libpng decoder"));
  png_set_read_fn(png, &source, png_on_read);

  PngLayout layout;
  if (!png_read_layout(png, info, &layout)) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": bad PNG header: ", source.error));
  }
  PLM_RETURN_IF_ERROR(check_size(name, layout.width, layout.height, limits));
  if (layout.num_channels != kRgbChannels) {
    return absl::InternalError(absl::StrCat(name, ": libpng gives ", layout.num_channels, " channels, not RGB"));
  }
  RgbImage image(static_cast<int>(layout.width), static_cast<int>(layout.height));
  if (!png_read_pixels(png, layout, image.pixels.data())) {
    return absl::DataLossError(absl::StrCat(name, ": corrupt PNG: ", source.error));
  }
  return apply_exif_orientation(std::move(image), png_exif_orientation(png, info));
}

std::string hex_prefix(std::string_view bytes) {
  std::string out;
  for (size_t i = 0; i < std::min<size_t>(bytes.size(), 8); ++i) {
    absl::StrAppend(&out, i ? " " : "", absl::StrFormat("%02x", static_cast<uint8_t>(bytes[i])));
  }
  return out;
}

}  // namespace

int exif_orientation_of_tiff(const uint8_t* tiff, size_t size) {
  const TiffReader reader(tiff, size);
  constexpr uint32_t kTiffMagic = 42;
  constexpr size_t kIfdEntryBytes = 12;
  uint32_t magic = 0, ifd_offset = 0, num_entries = 0;
  if (!reader.valid() || !reader.u16(2, &magic) || magic != kTiffMagic || !reader.u32(4, &ifd_offset) ||
      !reader.u16(ifd_offset, &num_entries)) {
    return 0;
  }
  for (uint32_t i = 0; i < num_entries; ++i) {
    const size_t entry = static_cast<size_t>(ifd_offset) + 2 + i * kIfdEntryBytes;
    uint32_t tag = 0, value = 0;
    if (!reader.u16(entry, &tag)) return 0;
    if (tag == kExifOrientationTag) {
      // A SHORT value sits in the first two bytes of the value field.
      return reader.u16(entry + 8, &value) && value >= 1 && value <= 8 ? static_cast<int>(value) : 0;
    }
  }
  return 0;
}

RgbImage apply_exif_orientation(RgbImage image, int orientation) {
  if (orientation <= 1 || orientation > 8) return image;
  const int w = image.width, h = image.height;
  const bool transposed = orientation >= 5;  // 5..8 swap the axes
  RgbImage out(transposed ? h : w, transposed ? w : h);
  for (int y = 0; y < out.height; ++y) {
    for (int x = 0; x < out.width; ++x) {
      // The source pixel of (x, y), per torchcodec's flip/transpose for each code.
      int sx = x, sy = y;
      switch (orientation) {
        case 2: sx = w - 1 - x; break;
        case 3: sx = w - 1 - x; sy = h - 1 - y; break;
        case 4: sy = h - 1 - y; break;
        case 5: sx = y; sy = x; break;
        case 6: sx = y; sy = h - 1 - x; break;
        case 7: sx = w - 1 - y; sy = h - 1 - x; break;
        case 8: sx = w - 1 - y; sy = x; break;
      }
      std::memcpy(out.row(y) + x * kRgbChannels, image.row(sy) + sx * kRgbChannels, kRgbChannels);
    }
  }
  return out;
}

absl::StatusOr<RgbImage> decode_image(std::string_view bytes, const std::string& name,
                                      const ImageDecodeLimits& limits) {
  if (bytes.empty()) return absl::InvalidArgumentError(absl::StrCat(name, ": empty file"));
  if (bytes.size() >= 3 && static_cast<uint8_t>(bytes[0]) == 0xFF && static_cast<uint8_t>(bytes[1]) == 0xD8 &&
      static_cast<uint8_t>(bytes[2]) == 0xFF) {
    return decode_jpeg(bytes, name, limits);
  }
  if (bytes.size() >= sizeof(kPngSignature) && std::memcmp(bytes.data(), kPngSignature, sizeof(kPngSignature)) == 0) {
    return decode_png(bytes, name, limits);
  }
  return absl::InvalidArgumentError(
      absl::StrCat(name, ": not a JPEG or PNG file (first bytes: ", hex_prefix(bytes), ")"));
}

absl::StatusOr<RgbImage> decode_image_file(const std::filesystem::path& path, const ImageDecodeLimits& limits) {
  PLM_ASSIGN_OR_RETURN(const std::string bytes, read_file(path));
  return decode_image(bytes, path.string(), limits);
}

}  // namespace plm::data
