#include "tests/caption/caption_test_media.h"

#include <fstream>
#include <random>

#include "tests/data/test_video_writer.h"
#include "tests/serve/serve_fixture.h"

namespace plm::caption::testing {

std::vector<std::filesystem::path> write_test_videos(const std::filesystem::path& dir, int n) {
  std::filesystem::create_directories(dir);
  std::vector<std::filesystem::path> paths;
  for (int i = 0; i < n; ++i) {
    const std::filesystem::path path = dir / ("video_" + std::to_string(i) + ".mkv");
    plm::testing::write_test_video(path, {.container = "matroska", .codec = "mjpeg", .pattern_offset = 7 * i});
    paths.push_back(path);
  }
  return paths;
}

BadInputs write_bad_inputs(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  BadInputs bad{.corrupt = dir / "corrupt.mp4", .empty = dir / "empty.mp4", .text = dir / "notes.webm",
                .missing = dir / "missing.mp4"};
  std::mt19937 random(7);
  std::string bytes(4096, '\0');
  for (char& b : bytes) b = static_cast<char>(random());
  std::ofstream(bad.corrupt, std::ios::binary) << bytes;
  std::ofstream(bad.empty, std::ios::binary).flush();
  std::ofstream(bad.text) << "not a video\n";
  return bad;
}

std::filesystem::path copy_test_image(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  const std::filesystem::path path = dir / "image.png";
  std::filesystem::copy_file(serve::testing::inputs_dir() / "image_150x100.png", path,
                             std::filesystem::copy_options::overwrite_existing);
  return path;
}

void write_lines(const std::filesystem::path& path, const std::vector<std::string>& lines) {
  std::ofstream out(path, std::ios::binary);
  for (const std::string& line : lines) out << line << '\n';
}

std::vector<std::string> read_lines(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

}  // namespace plm::caption::testing
