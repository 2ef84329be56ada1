// Video reading and preprocessing against HF PerceptionLMVideoProcessor (transformers 5.23, torchcodec 0.17)
// on the fixture videos: frame counts, frame rates, sampled indices, decoded RGB and pixel values; the
// refusal of bad inputs without a crash or a hang; and the reader's rare paths on videos the tests make
// with FFmpeg (a size change mid-stream, a seek that lands past its target, a picture that never decodes,
// no video stream, a codec without a decoder, the deadline).
#include "data/video.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <string>

#include "data/video_processor.h"
#include "tests/data/preprocessing_fixtures.h"
#include "tests/data/test_video_writer.h"
#include "tests/data/tokenizer_test_util.h"

namespace plm::data {
namespace {

using ::plm::testing::check_tile;
using ::plm::testing::crc32_of;
using ::plm::testing::crc_list;
using ::plm::testing::expected_u8;
using ::plm::testing::fresh_temp_dir;
using ::plm::testing::preprocessing_input;
using ::plm::testing::preprocessing_manifest;
using ::plm::testing::read_test_file;
using ::plm::testing::rgb_from_array;
using ::plm::testing::TestVideoSpec;
using ::plm::testing::write_test_audio;
using ::plm::testing::write_test_file;
using ::plm::testing::write_test_video;

constexpr double kTolerance = 1e-5 * 2.0;  // 1e-5 of the pixel value range

FrameSampling sampling_of(const nlohmann::json& s) {
  FrameSampling sampling;
  if (s.contains("num_frames")) sampling.num_frames = s["num_frames"].get<int64_t>();
  if (s.contains("fps")) sampling.fps = s["fps"].get<double>();
  return sampling;
}

std::vector<int64_t> int_list(const nlohmann::json& list) { return list.get<std::vector<int64_t>>(); }

TEST(VideoTest, SamplingFollowsHf) {
  EXPECT_EQ(*sample_frame_indices(20, 10.0, {.num_frames = 8}), (std::vector<int64_t>{0, 2, 5, 7, 10, 12, 15, 17}));
  EXPECT_EQ(*sample_frame_indices(30, 10.0, {.fps = 2.0}), (std::vector<int64_t>{0, 5, 10, 15, 20, 25}));
  EXPECT_EQ(*sample_frame_indices(3, 10.0, {.fps = 0.5}), (std::vector<int64_t>{0}));  // at least one frame
  EXPECT_EQ(sample_frame_indices(4, 10.0, {}).value().size(), 4u);                    // neither: all
  EXPECT_FALSE(sample_frame_indices(7, 10.0, {.num_frames = 8}).ok());                // more than there are
  EXPECT_FALSE(sample_frame_indices(70, 10.0, {.num_frames = 8, .fps = 1.0}).ok());   // both
  EXPECT_FALSE(sample_frame_indices(70, 0.0, {.fps = 1.0}).ok());                     // no frame rate
  // plm's default: an upper bound, so a short video gives all its frames.
  EXPECT_EQ(*sample_frame_indices(4, 10.0, {.num_frames = 32, .at_most = true}), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(*sample_frame_indices(20, 10.0, {.num_frames = 8, .at_most = true}),
            (std::vector<int64_t>{0, 2, 5, 7, 10, 12, 15, 17}));
}

// Decodes every fixture video with each sampling of the manifest; returns nothing, reports diffs.
TEST(VideoTest, DecodesAsTorchcodecDoes) {
  int num_videos_with_stored_frames = 0;
  for (const auto& [name, entry] : preprocessing_manifest()["videos"].items()) {
    SCOPED_TRACE(name);
    for (const char* config : {"default", "small_fps2"}) {
      const nlohmann::json& expected = entry[config];
      absl::StatusOr<DecodedVideo> video =
          decode_video_file(preprocessing_input(name), sampling_of(expected["sampling"]));
      ASSERT_TRUE(video.ok()) << video.status();
      EXPECT_EQ(video->info.num_frames, entry["num_frames"].get<int64_t>());
      EXPECT_EQ(video->info.average_fps, entry["average_fps"].get<double>());
      EXPECT_EQ(video->info.duration_s, entry["duration_seconds"].get<double>());
      EXPECT_EQ(video->info.width, entry["width"].get<int>());
      EXPECT_EQ(video->info.height, entry["height"].get<int>());
      EXPECT_FALSE(video->info.truncated);
      EXPECT_EQ(video->frame_indices, int_list(expected["frame_indices"]));
      if (std::string(config) != "default") continue;
      const std::vector<uint32_t> crcs = crc_list(expected["decoded_crc32"]);
      ASSERT_EQ(video->frames.size(), crcs.size());
      const testing::U8Array* stored = expected_u8("decoded/" + name);
      num_videos_with_stored_frames += stored != nullptr;
      int max_diff = 0;
      for (size_t t = 0; t < video->frames.size(); ++t) {
        const RgbImage& frame = video->frames[t];
        EXPECT_EQ(crc32_of(frame.pixels.data(), frame.pixels.size()), crcs[t]) << "frame " << t;
        if (stored) {
          const RgbImage reference = rgb_from_array(*stored, static_cast<int64_t>(t));
          for (size_t i = 0; i < frame.pixels.size(); ++i) {
            max_diff = std::max(max_diff, std::abs(int{frame.pixels[i]} - int{reference.pixels[i]}));
          }
        }
      }
      if (stored) std::printf("%s: decoded RGB max |ours - torchcodec| = %d\n", name.c_str(), max_diff);
      EXPECT_EQ(max_diff, 0);
    }
  }
  // make_preprocessing_fixtures.py stores the frames of DECODED_FULL_VIDEOS: h264_64x48.mp4, mjpeg_72x40.avi.
  EXPECT_EQ(num_videos_with_stored_frames, 2);
}

TEST(VideoTest, PixelValuesMatchHf) {
  double max_diff = 0.0;
  int num_frames_checked = 0, num_frames_with_levels = 0;
  for (const auto& [name, entry] : preprocessing_manifest()["videos"].items()) {
    for (const auto& [config_name, config_json] : preprocessing_manifest()["video_configs"].items()) {
      SCOPED_TRACE(name + " " + config_name);
      VideoProcessorConfig config;
      if (config_json["processor"].contains("size")) {
        config.height = config_json["processor"]["size"]["height"];
        config.width = config_json["processor"]["size"]["width"];
      }
      const nlohmann::json& expected = entry[config_name];
      absl::StatusOr<ProcessedVideo> processed =
          load_and_process_video(preprocessing_input(name), sampling_of(expected["sampling"]), config);
      ASSERT_TRUE(processed.ok()) << processed.status();
      const Tensor pixels = processed->pixel_values;
      const std::vector<uint32_t> crcs = crc_list(expected["frame_crc32"]);
      ASSERT_EQ(pixels.shape(), (Shape{static_cast<int64_t>(crcs.size()), 3, config.height, config.width}));
      const testing::U8Array* all = expected_u8("video_" + config_name + "/" + name);
      const testing::U8Array* first = expected_u8("video_" + config_name + "/" + name + "/frame0");
      const size_t frame_floats = static_cast<size_t>(3) * config.height * config.width;
      for (size_t t = 0; t < crcs.size(); ++t) {
        const uint8_t* levels = all ? all->data.data() + t * frame_floats : (t == 0 && first) ? first->data.data() : nullptr;
        const testing::TileCheck check = check_tile(pixels.data_as<float>() + t * frame_floats, frame_floats, levels);
        EXPECT_TRUE(check.all_levels) << "frame " << t;
        EXPECT_EQ(check.crc32, crcs[t]) << "frame " << t;
        max_diff = std::max(max_diff, check.max_abs_diff);
        ++num_frames_checked;
        num_frames_with_levels += levels != nullptr;
      }
    }
  }
  std::printf("videos: %d frames match by CRC-32, %d also value by value: max |ours - HF| = %g\n",
              num_frames_checked, num_frames_with_levels, max_diff);
  EXPECT_LE(max_diff, kTolerance);
}

TEST(VideoTest, ProcessingTorchcodecFramesMatchesHf) {
  // Frame preprocessing alone, fed with torchcodec's own decoded frames (stored for DECODED_FULL_VIDEOS of
  // make_preprocessing_fixtures.py; HF's output is stored for every video).
  int num_compared = 0;
  for (const auto& [name, entry] : preprocessing_manifest()["videos"].items()) {
    SCOPED_TRACE(name);
    const testing::U8Array* expected = expected_u8("video_small/" + name);
    ASSERT_NE(expected, nullptr) << "the fixtures lack video_small/" << name;
    const testing::U8Array* decoded = expected_u8("decoded/" + name);
    if (decoded == nullptr) continue;  // counted below
    ++num_compared;
    std::vector<RgbImage> frames;
    for (int64_t t = 0; t < decoded->shape[0]; ++t) frames.push_back(rgb_from_array(*decoded, t));
    const OwnedTensor pixels = process_video_frames(frames, {.height = 40, .width = 56});
    const testing::TileCheck check = check_tile(pixels.data_as<float>(), pixels.numel(), expected->data.data());
    EXPECT_TRUE(check.all_levels);
    EXPECT_LE(check.max_abs_diff, kTolerance);
  }
  EXPECT_EQ(num_compared, 2) << "h264_64x48.mp4 and mjpeg_72x40.avi";
}

TEST(VideoTest, DurationAndFrameLimits) {
  const auto path = preprocessing_input("h264_64x48.mp4");  // 30 frames at 10 fps
  absl::StatusOr<DecodedVideo> cut = decode_video_file(path, {.num_frames = 4}, {.max_duration_s = 1.0});
  ASSERT_TRUE(cut.ok()) << cut.status();
  EXPECT_TRUE(cut->info.truncated);
  EXPECT_EQ(cut->info.num_frames, 10);
  EXPECT_EQ(cut->frame_indices, (std::vector<int64_t>{0, 2, 5, 7}));
  absl::StatusOr<DecodedVideo> refused =
      decode_video_file(path, {.num_frames = 4}, {.max_duration_s = 1.0, .refuse_longer = true});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kOutOfRange) << refused.status();
  EXPECT_THAT(std::string(refused.status().message()), ::testing::HasSubstr("longer than the limit of 1 s"));
  EXPECT_TRUE(decode_video_file(path, {.num_frames = 4}, {.max_duration_s = 10.0, .refuse_longer = true}).ok());

  absl::StatusOr<DecodedVideo> too_many = decode_video_file(path, {}, {.max_output_frames = 16});
  EXPECT_EQ(too_many.status().code(), absl::StatusCode::kResourceExhausted) << too_many.status();
  absl::StatusOr<DecodedVideo> too_big = decode_video_file(path, {.num_frames = 2}, {.max_pixels_per_frame = 1000});
  EXPECT_EQ(too_big.status().code(), absl::StatusCode::kResourceExhausted) << too_big.status();
  absl::StatusOr<DecodedVideo> beyond = decode_video_file(path, {.num_frames = 31});
  EXPECT_EQ(beyond.status().code(), absl::StatusCode::kInvalidArgument) << beyond.status();
}

void expect_refused(const std::filesystem::path& path, absl::StatusCode code, const std::string& words,
                    const FrameSampling& sampling = {.num_frames = 4}, const VideoDecodeLimits& limits = {}) {
  absl::StatusOr<DecodedVideo> video = decode_video_file(path, sampling, limits);
  ASSERT_FALSE(video.ok()) << path;
  EXPECT_EQ(video.status().code(), code) << video.status();
  EXPECT_NE(video.status().message().find(path.string()), std::string::npos) << video.status();
  EXPECT_NE(video.status().message().find(words), std::string::npos) << video.status();
}

TEST(VideoTest, RefusesBadInputs) {
  const auto dir = fresh_temp_dir("video_bad_inputs");
  expect_refused(preprocessing_input("zero_frames.avi"), absl::StatusCode::kInvalidArgument, "no frames");
  write_test_file(dir / "notes.mp4", "this is a text file, not a video\n");
  expect_refused(dir / "notes.mp4", absl::StatusCode::kInvalidArgument, "cannot open as a video");
  expect_refused(dir / "missing.mp4", absl::StatusCode::kNotFound, "no such file");
  ASSERT_EQ(mkfifo((dir / "pipe.mp4").c_str(), 0600), 0);  // would block open() forever
  expect_refused(dir / "pipe.mp4", absl::StatusCode::kInvalidArgument, "not a regular file");
  expect_refused(preprocessing_input("tiny_5x3.png"), absl::StatusCode::kInvalidArgument, "cannot sample 4 frames");
}

TEST(VideoTest, TruncatedVideosFailCleanly) {
  const auto dir = fresh_temp_dir("video_truncated");
  for (const char* name : {"h264_64x48.mp4", "vp9_96x64.webm", "h264_160x96.mkv", "mjpeg_72x40.avi"}) {
    const std::string bytes = read_test_file(preprocessing_input(name));
    for (double fraction : {0.02, 0.3, 0.7}) {
      const auto path = dir / (std::to_string(static_cast<int>(fraction * 100)) + "_" + name);
      write_test_file(path, std::string_view(bytes).substr(0, static_cast<size_t>(bytes.size() * fraction)));
      absl::StatusOr<DecodedVideo> video = decode_video_file(path, {.num_frames = 8});
      // A cut file either fails with its name in the message, or decodes to fewer frames than the original.
      if (video.ok()) {
        EXPECT_LT(video->info.num_frames, preprocessing_manifest()["videos"][name]["num_frames"].get<int64_t>());
        EXPECT_EQ(video->frames.size(), 8u);
      } else {
        EXPECT_NE(video.status().message().find(path.string()), std::string::npos) << video.status();
      }
      std::printf("%s cut to %d%%: %s\n", name, static_cast<int>(fraction * 100),
                  video.ok() ? ("decodes, " + std::to_string(video->info.num_frames) + " frames").c_str()
                             : std::string(video.status().ToString()).c_str());
    }
  }
}

// Random bytes overwritten: every file decodes to well-formed frames or is refused with its name and one of
// the codes of a clean refusal, never a crash, a hang or another code.
TEST(VideoTest, CorruptBytesDecodeOrFailCleanly) {
  const auto dir = fresh_temp_dir("video_corrupt");
  const std::set<absl::StatusCode> clean_refusals = {
      absl::StatusCode::kInvalidArgument,    // not a video, no frames, no timestamps, too few frames
      absl::StatusCode::kDataLoss,           // a packet or a frame that does not read or decode
      absl::StatusCode::kUnimplemented,      // a codec or pixel format without a decoder
      absl::StatusCode::kResourceExhausted,  // a header claiming frames beyond the limits
  };
  std::mt19937 rng(11);
  std::map<absl::StatusCode, int> num_by_code;  // kOk: decoded anyway
  for (const char* name : {"h264_64x48.mp4", "vp9_96x64.webm", "mjpeg_72x40.avi"}) {
    const std::string original = read_test_file(preprocessing_input(name));
    for (int trial = 0; trial < 12; ++trial) {
      // Odd trials hit the first 1 KB, where the container's headers are; even ones anywhere.
      const size_t span = trial % 2 ? std::min<size_t>(original.size(), 1024) : original.size();
      std::string bytes = original;
      for (int k = 0; k < 1 + 4 * (trial % 6); ++k) bytes[rng() % span] = static_cast<char>(rng());
      const auto path = dir / (std::to_string(trial) + "_" + name);
      SCOPED_TRACE(path.string());
      write_test_file(path, bytes);
      absl::StatusOr<DecodedVideo> video = decode_video_file(path, {.num_frames = 2});
      ++num_by_code[video.status().code()];
      if (video.ok()) {
        ASSERT_EQ(video->frames.size(), 2u);
        for (const RgbImage& frame : video->frames) {
          EXPECT_GT(frame.width, 0);
          EXPECT_GT(frame.height, 0);
          EXPECT_EQ(frame.pixels.size(), static_cast<size_t>(frame.width) * frame.height * kRgbChannels);
        }
      } else {
        EXPECT_TRUE(clean_refusals.contains(video.status().code())) << video.status();
        EXPECT_NE(video.status().message().find(path.string()), std::string::npos) << video.status();
      }
    }
  }
  int num_files = 0;
  std::printf("corrupted videos:");
  for (const auto& [code, count] : num_by_code) {
    std::printf(" %d %s", count, absl::StatusCodeToString(code).c_str());
    num_files += count;
  }
  std::printf("\n");
  EXPECT_EQ(num_files, 3 * 12);
}

// Videos made by the test with FFmpeg's encoders and muxers (tests/data/test_video_writer.h).
class MadeVideoTest : public ::testing::Test {
 protected:
  std::filesystem::path write(const std::string& name, const TestVideoSpec& spec) {
    const std::filesystem::path path = dir_ / name;
    write_test_video(path, spec);
    return path;
  }
  const std::filesystem::path dir_ = fresh_temp_dir("made_videos");
};

TEST_F(MadeVideoTest, FrameSizeChangesMidStream) {
  // MJPEG frames each carry their size: 5 frames at 64x48, then 5 at 32x24, in one stream.
  const auto path = write("size_change.mkv", {.segments = {{5, 64, 48}, {5, 32, 24}}});
  absl::StatusOr<DecodedVideo> video = decode_video_file(path, {});
  ASSERT_TRUE(video.ok()) << video.status();
  EXPECT_EQ(video->info.num_frames, 10);
  EXPECT_EQ(video->info.width, 64);  // the stream's declared size: its first frames'
  EXPECT_EQ(video->info.height, 48);
  ASSERT_EQ(video->frames.size(), 10u);
  for (size_t t = 0; t < video->frames.size(); ++t) {
    EXPECT_EQ(video->frames[t].width, t < 5 ? 64 : 32) << "frame " << t;
    EXPECT_EQ(video->frames[t].height, t < 5 ? 48 : 24) << "frame " << t;
  }
  // Sampled across the change (frames 0 and 5, the converter set up for each size): the same frames.
  absl::StatusOr<DecodedVideo> two = decode_video_file(path, {.num_frames = 2});
  ASSERT_TRUE(two.ok()) << two.status();
  ASSERT_EQ(two->frame_indices, (std::vector<int64_t>{0, 5}));
  EXPECT_EQ(two->frames[0].pixels, video->frames[0].pixels);
  EXPECT_EQ(two->frames[1].pixels, video->frames[5].pixels);
  EXPECT_NE(video->frames[5].pixels, video->frames[6].pixels);

  // The declared size is within the pixel limit, a later frame is not: refused when that frame comes.
  const auto grows = write("size_grows.mkv", {.segments = {{2, 32, 24}, {2, 64, 48}}});
  expect_refused(grows, absl::StatusCode::kResourceExhausted, "a frame is 64x48, more than 1536 pixels", {},
                 {.max_pixels_per_frame = 32 * 24 * 2});
}

TEST_F(MadeVideoTest, SeekLandingPastTheTargetRestartsFromTheFirstKeyFrame) {
  // MPEG-2 with an I-frame every 10 frames, in NUT (which keeps the container's key-frame flags: no parser
  // rewrites them). Flagging P-frame 5 as a key frame sends the seek for frame 6 there; the decoder drops
  // P-frames until the next I-frame, so the first frame out is 10, past the target. The reader must go back
  // to frame 0 and decode forward, not return frame 10 as frame 6.
  TestVideoSpec spec = {.container = "nut", .codec = "mpeg2video", .segments = {{30, 64, 48}}, .gop_size = 10};
  const auto honest = write("honest.nut", spec);
  spec.fake_key_packets = {5};
  const auto lying = write("fake_key.nut", spec);
  absl::StatusOr<DecodedVideo> all = decode_video_file(honest, {});
  absl::StatusOr<DecodedVideo> sampled = decode_video_file(lying, {.num_frames = 5});
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_TRUE(sampled.ok()) << sampled.status();
  ASSERT_EQ(sampled->frame_indices, (std::vector<int64_t>{0, 6, 12, 18, 24}));
  for (size_t t = 0; t < sampled->frames.size(); ++t) {
    EXPECT_EQ(sampled->frames[t].pixels, all->frames[sampled->frame_indices[t]].pixels)
        << "frame " << sampled->frame_indices[t];
  }
  EXPECT_NE(all->frames[6].pixels, all->frames[10].pixels);  // the wrong answer is distinguishable
}

TEST_F(MadeVideoTest, PacketsThatDecodeToNothing) {
  // The index counts packets. A packet of zeros holds no MPEG-2 picture, so the decoder never delivers
  // the last frame: a DataLoss naming the frame, not a shorter video.
  const auto no_picture = write("last_zeroed.nut", {.container = "nut", .codec = "mpeg2video",
                                                    .segments = {{10, 64, 48}}, .zeroed_packets = {9}});
  expect_refused(no_picture, absl::StatusCode::kDataLoss, "frame 9 (of 10 in the index) could not be decoded", {});
  // MJPEG's decoder rejects such a packet outright.
  const auto rejected = write("zeroed.mkv", {.zeroed_packets = {5}});
  expect_refused(rejected, absl::StatusCode::kDataLoss, "cannot decode a packet", {});
}

TEST_F(MadeVideoTest, NoVideoStream) {
  write_test_audio(dir_ / "tone.wav");
  expect_refused(dir_ / "tone.wav", absl::StatusCode::kInvalidArgument, "no video stream");
}

TEST_F(MadeVideoTest, CodecWithoutDecoder) {
  // An AVI whose FourCC no FFmpeg decoder knows.
  const auto path = write("unknown.avi", {.container = "avi", .unknown_fourcc = "QQQQ"});
  expect_refused(path, absl::StatusCode::kUnimplemented, "no decoder for codec none (FourCC QQQQ)");
}

TEST_F(MadeVideoTest, DeadlineStopsALongDecode) {
  // 600 MPEG-2 frames at 160x120, all of them asked for: reading them polls the deadline at every refill
  // of FFmpeg's 32 KB read buffer, ~60 times a pass, and decoding them takes far longer than 1 ms.
  const auto path = write("long.mkv", {.codec = "mpeg2video", .segments = {{600, 160, 120}}});
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<DecodedVideo> unlimited = decode_video_file(path, {}, {.timeout_ms = 0});
  const auto elapsed_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(unlimited.ok()) << unlimited.status();
  EXPECT_EQ(unlimited->frames.size(), 600u);
  std::printf("600 frames without a deadline: %lld ms\n", static_cast<long long>(elapsed_ms));
  ASSERT_GE(elapsed_ms, 5) << "too fast to test a 1 ms deadline";
  expect_refused(path, absl::StatusCode::kDeadlineExceeded, "timed out after 1 ms", {}, {.timeout_ms = 1});
}

}  // namespace
}  // namespace plm::data
