// Media for the caption tests, made on the spot: distinct short videos (FFmpeg's encoders, tests/data's writer),
// a copy of the fixture image, and the bad inputs a caption job must survive (a corrupt "video", an empty file, a
// text file, a missing path).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace plm::caption::testing {

// n distinct videos (10 frames of 64x48 at 10 fps, each with its own pattern) under dir: video_<i>.mkv.
std::vector<std::filesystem::path> write_test_videos(const std::filesystem::path& dir, int n);

struct BadInputs {
  std::filesystem::path corrupt;  // random bytes named .mp4
  std::filesystem::path empty;    // zero-length .mp4
  std::filesystem::path text;     // a text file named .webm (not a video)
  std::filesystem::path missing;  // no such file
};
BadInputs write_bad_inputs(const std::filesystem::path& dir);

// The fixture image (150x100 PNG) copied under dir.
std::filesystem::path copy_test_image(const std::filesystem::path& dir);

void write_lines(const std::filesystem::path& path, const std::vector<std::string>& lines);
std::vector<std::string> read_lines(const std::filesystem::path& path);

}  // namespace plm::caption::testing
