// Video and audio files made on the spot with FFmpeg's own encoders and muxers (libavcodec, libavformat),
// for the reader's rare paths: a size change mid-stream, container key-frame flags the bitstream does not
// back, damaged packets, a codec FFmpeg cannot decode, no video stream at all.
// Test-only: every FFmpeg failure is a PLM_CHECK.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace plm::testing {

// Frames encoded at one size by one encoder; several segments share one stream.
struct VideoSegment {
  int num_frames = 10;
  int width = 64;
  int height = 48;
};

struct TestVideoSpec {
  std::string container = "matroska";  // an FFmpeg muxer name
  std::string codec = "mjpeg";         // an FFmpeg encoder name
  std::vector<VideoSegment> segments = {VideoSegment{}};
  int gop_size = 10;  // a key frame every gop_size frames (inter codecs)
  int fps = 10;
  // Packets (in decode order, from 0) the container flags as key frames although the bitstream does not.
  std::set<int64_t> fake_key_packets = {};
  // Packets whose bytes are replaced by zeros of the same length: a picture the decoder cannot find.
  std::set<int64_t> zeroed_packets = {};
  // Declare the stream as this FourCC with no codec id (the packets stay `codec`'s): no decoder exists for it.
  std::optional<std::string> unknown_fourcc = std::nullopt;
  // Frame k shows pattern k + pattern_offset: videos that differ in content at the same length.
  int64_t pattern_offset = 0;
};

// Frame k (counted over all segments) shows a pattern of its own: a gradient shifted by k, chroma set by k.
void write_test_video(const std::filesystem::path& path, const TestVideoSpec& spec);

// A WAV file of one second of a 440 Hz tone: a media file without a video stream.
void write_test_audio(const std::filesystem::path& path);

}  // namespace plm::testing
