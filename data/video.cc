// FFmpeg (libavformat, libavcodec, libswscale) video reading in torchcodec's "exact" manner:
//   1. scan: every packet of the best video stream is one frame; their presentation times, sorted, index
//      the frames, and the key frames are remembered for seeking;
//   2. sample indices from the frame count (HF's rule);
//   3. decode the chosen frames in order from a fresh demuxer, seeking to a target's key frame when it
//      lies ahead of what was decoded, and matching frames to targets by presentation time;
//   4. convert with swscale exactly as torchcodec's CPU path does (flags 0, the frame's colour matrix).
#include "data/video.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avutil.h>
#include <libavutil/log.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "data/ffmpeg_handles.h"
#include "data/ffmpeg_log.h"

namespace plm::data {
namespace {

std::string av_error_text(int code) {
  char text[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(code, text, sizeof(text));
  return text;
}

struct FormatCloser {
  void operator()(AVFormatContext* c) const { avformat_close_input(&c); }
};

// FFmpeg polls this during blocking I/O; a nonzero answer aborts the call.
struct Deadline {
  int64_t timeout_ms = 0;  // 0: none
  std::chrono::steady_clock::time_point end;
  bool expired() const { return timeout_ms > 0 && std::chrono::steady_clock::now() > end; }
};
int interrupt_when_expired(void* deadline) { return static_cast<const Deadline*>(deadline)->expired() ? 1 : 0; }

// torchcodec's get_pts_or_dts.
int64_t pts_or_dts(int64_t pts, int64_t dts) { return pts == AV_NOPTS_VALUE ? dts : pts; }

// FFmpeg's AVFormatContext::io_open for a video that is one file: the first open (the file itself) goes through,
// every later one is refused. Playlists (HLS, DASH), concat scripts and image sequences name other files or URLs;
// following them let a video read what its caller never chose (an HLS playlist sent as a data: URL read a video
// outside plm serve's media root). `s->opaque` is the Demuxer's flag.
int open_only_the_file(AVFormatContext* s, AVIOContext** pb, const char* url, int flags, AVDictionary** options) {
  bool* const opened = static_cast<bool*>(s->opaque);
  if (*opened) return AVERROR(EPERM);
  *opened = true;
  return avio_open2(pb, url, flags, &s->interrupt_callback, options);
}

// One open file with its best video stream chosen.
struct Demuxer {
  std::string name;
  bool opened = false;  // open_only_the_file's state
  const Deadline* deadline = nullptr;
  std::unique_ptr<AVFormatContext, FormatCloser> format;
  int stream_index = -1;
  AVStream* stream = nullptr;

  absl::Status error(absl::StatusCode code, const char* what, int av_code) const {
    if (deadline->expired()) {
      return absl::DeadlineExceededError(
          absl::StrCat(name, ": timed out after ", deadline->timeout_ms, " ms (", what, ")"));
    }
    return absl::Status(code, absl::StrCat(name, ": ", what, ": ", av_error_text(av_code)));
  }
};

absl::StatusOr<std::unique_ptr<Demuxer>> open_demuxer(const std::filesystem::path& path, const Deadline& deadline) {
  quiet_ffmpeg_log();
  auto demuxer = std::make_unique<Demuxer>();
  demuxer->name = path.string();
  demuxer->deadline = &deadline;
  // A FIFO or a device could block inside open() or read() where no deadline reaches.
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) {
    return std::filesystem::exists(path, error)
               ? absl::InvalidArgumentError(absl::StrCat(demuxer->name, ": not a regular file"))
               : absl::NotFoundError(absl::StrCat(demuxer->name, ": no such file"));
  }
  AVFormatContext* format = avformat_alloc_context();
  if (format == nullptr) return absl::ResourceExhaustedError(absl::StrCat(demuxer->name, ": out of memory"));
  format->interrupt_callback = {interrupt_when_expired, const_cast<Deadline*>(&deadline)};
  format->opaque = &demuxer->opened;
  format->io_open = open_only_the_file;
  // "file:" so that a local name such as "http:x.mp4" is never taken for a URL.
  const std::string url = "file:" + path.string();
  if (const int code = avformat_open_input(&format, url.c_str(), nullptr, nullptr); code < 0) {
    return demuxer->error(absl::StatusCode::kInvalidArgument, "cannot open as a video",
                          code);  // avformat_open_input freed `format`
  }
  demuxer->format.reset(format);
  if (const int code = avformat_find_stream_info(format, nullptr); code < 0) {
    return demuxer->error(absl::StatusCode::kInvalidArgument, "cannot read the stream information", code);
  }
  demuxer->stream_index = av_find_best_stream(format, AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
  if (demuxer->stream_index < 0) {
    return absl::InvalidArgumentError(absl::StrCat(demuxer->name, ": no video stream"));
  }
  demuxer->stream = format->streams[demuxer->stream_index];
  return demuxer;
}

// Reads the next packet of the video stream; AVERROR_EOF at the end.
int read_video_packet(const Demuxer& demuxer, AVPacket* packet) {
  while (true) {
    av_packet_unref(packet);
    const int code = av_read_frame(demuxer.format.get(), packet);
    if (code < 0 || packet->stream_index == demuxer.stream_index) return code;
  }
}

// The frames of the video, from a scan of its packets (torchcodec scan_file_and_update_metadata_and_index).
struct FrameIndex {
  std::vector<int64_t> pts;      // sorted: frame i is the i-th in presentation order
  std::vector<int64_t> key_pts;  // sorted
  VideoInfo info;
};

absl::StatusOr<FrameIndex> scan_frames(const Demuxer& demuxer, const VideoDecodeLimits& limits) {
  FrameIndex index;
  const double time_base = av_q2d(demuxer.stream->time_base);
  int64_t begin = INT64_MAX, end = INT64_MIN, first = AV_NOPTS_VALUE;
  PacketPtr packet(av_packet_alloc());
  int code;
  bool stopped_early = false;
  while ((code = read_video_packet(demuxer, packet.get())) >= 0) {
    if (packet->flags & AV_PKT_FLAG_DISCARD) continue;
    const int64_t pts = pts_or_dts(packet->pts, packet->dts);
    if (pts == AV_NOPTS_VALUE) {
      return absl::InvalidArgumentError(absl::StrCat(demuxer.name, ": a video packet has no timestamp"));
    }
    if (first == AV_NOPTS_VALUE) first = pts;
    const double seconds_in = (pts - first) * time_base;
    if (seconds_in >= limits.max_duration_s) {
      index.info.truncated = true;
      if (seconds_in >= limits.max_duration_s + 10.0) {  // past any reordering: stop reading
        stopped_early = true;
        break;
      }
      continue;
    }
    begin = std::min(begin, pts);
    end = std::max(end, pts + packet->duration);
    index.pts.push_back(pts);
    if (packet->flags & AV_PKT_FLAG_KEY) index.key_pts.push_back(pts);
  }
  if (!stopped_early && code != AVERROR_EOF) {
    return demuxer.error(absl::StatusCode::kDataLoss, "cannot read the video", code);
  }
  if (index.pts.empty()) return absl::InvalidArgumentError(absl::StrCat(demuxer.name, ": the video has no frames"));
  std::sort(index.pts.begin(), index.pts.end());
  std::sort(index.key_pts.begin(), index.key_pts.end());

  VideoInfo& info = index.info;
  info.num_frames = static_cast<int64_t>(index.pts.size());
  // As torchcodec: seconds of the first and the end timestamp, subtracted as doubles.
  info.duration_s = end * time_base - begin * time_base;
  info.average_fps = info.duration_s != 0.0 ? info.num_frames / info.duration_s : av_q2d(demuxer.stream->avg_frame_rate);
  info.width = demuxer.stream->codecpar->width;
  info.height = demuxer.stream->codecpar->height;
  return index;
}

// Frames in presentation order from a demuxer, with seeking.
class FrameDecoder {
 public:
  static absl::StatusOr<std::unique_ptr<FrameDecoder>> open(std::unique_ptr<Demuxer> demuxer) {
    auto decoder = std::unique_ptr<FrameDecoder>(new FrameDecoder(std::move(demuxer)));
    const AVCodecParameters* parameters = decoder->demuxer_->stream->codecpar;
    const AVCodec* codec = avcodec_find_decoder(parameters->codec_id);
    if (codec == nullptr) {
      char tag[AV_FOURCC_MAX_STRING_SIZE] = {};
      av_fourcc_make_string(tag, parameters->codec_tag);
      return absl::UnimplementedError(absl::StrCat(decoder->demuxer_->name, ": no decoder for codec ",
                                                   avcodec_get_name(parameters->codec_id), " (FourCC ", tag, ")"));
    }
    decoder->codec_.reset(avcodec_alloc_context3(codec));
    AVCodecContext* context = decoder->codec_.get();
    if (context == nullptr || avcodec_parameters_to_context(context, parameters) < 0) {
      return absl::ResourceExhaustedError(absl::StrCat(decoder->demuxer_->name, ": cannot set up the decoder"));
    }
    context->pkt_timebase = decoder->demuxer_->stream->time_base;
    context->thread_count = 0;  // FFmpeg's choice, as HF asks torchcodec for (num_ffmpeg_threads=0)
    if (const int code = avcodec_open2(context, codec, nullptr); code < 0) {
      return decoder->demuxer_->error(absl::StatusCode::kInvalidArgument, "cannot open the decoder", code);
    }
    return decoder;
  }

  const Demuxer& demuxer() const { return *demuxer_; }

  // Positions the demuxer at the key frame whose timestamp is `key_pts`; false when the format cannot seek.
  bool seek(int64_t key_pts) {
    const int code =
        avformat_seek_file(demuxer_->format.get(), demuxer_->stream_index, INT64_MIN, key_pts, key_pts, 0);
    if (code < 0) return false;
    avcodec_flush_buffers(codec_.get());
    at_end_of_file_ = false;
    return true;
  }

  // The next decoded frame (owned by the decoder until the next call), or nullptr after the last one.
  absl::StatusOr<const AVFrame*> next() {
    while (true) {
      const int received = avcodec_receive_frame(codec_.get(), frame_.get());
      if (received == 0) return frame_.get();
      if (received == AVERROR_EOF) return nullptr;
      if (received != AVERROR(EAGAIN)) {
        return demuxer_->error(absl::StatusCode::kDataLoss, "cannot decode a frame", received);
      }
      const int read = read_video_packet(*demuxer_, packet_.get());
      if (read == AVERROR_EOF) {
        if (!at_end_of_file_) avcodec_send_packet(codec_.get(), nullptr);  // drain the reorder buffer
        at_end_of_file_ = true;
        continue;
      }
      if (read < 0) return demuxer_->error(absl::StatusCode::kDataLoss, "cannot read the video", read);
      if (const int sent = avcodec_send_packet(codec_.get(), packet_.get()); sent < 0) {
        return demuxer_->error(absl::StatusCode::kDataLoss, "cannot decode a packet", sent);
      }
    }
  }

 private:
  explicit FrameDecoder(std::unique_ptr<Demuxer> demuxer)
      : demuxer_(std::move(demuxer)), frame_(av_frame_alloc()), packet_(av_packet_alloc()) {}

  std::unique_ptr<Demuxer> demuxer_;
  CodecPtr codec_;
  FramePtr frame_;
  PacketPtr packet_;
  bool at_end_of_file_ = false;
};

// torchcodec's CPU colour conversion (SwScale + create_sws_context): one swscale pass at the frame's size,
// flags 0 (FFmpeg then picks bicubic, which an unscaled conversion does not use), and the YUV matrix of the
// frame's colorspace on both sides with the ranges swscale derived from the pixel formats.
class RgbConverter {
 public:
  absl::StatusOr<RgbImage> convert(const AVFrame& frame, const std::string& name) {
    const auto format = static_cast<AVPixelFormat>(frame.format);
    if (!context_ || frame.width != width_ || frame.height != height_ || format != format_ ||
        frame.colorspace != colorspace_) {
      context_.reset(sws_getContext(frame.width, frame.height, format, frame.width, frame.height, AV_PIX_FMT_RGB24,
                                    0, nullptr, nullptr, nullptr));
      if (!context_) {
        return absl::UnimplementedError(absl::StrCat(name, ": cannot convert pixel format ",
                                                     av_get_pix_fmt_name(format) ? av_get_pix_fmt_name(format) : "?",
                                                     " to RGB"));
      }
      int *inverse_table = nullptr, *table = nullptr;
      int source_range = 0, destination_range = 0, brightness = 0, contrast = 0, saturation = 0;
      sws_getColorspaceDetails(context_.get(), &inverse_table, &source_range, &table, &destination_range,
                               &brightness, &contrast, &saturation);
      const int* coefficients = sws_getCoefficients(frame.colorspace);
      sws_setColorspaceDetails(context_.get(), coefficients, source_range, coefficients, destination_range,
                               brightness, contrast, saturation);
      width_ = frame.width;
      height_ = frame.height;
      format_ = format;
      colorspace_ = frame.colorspace;
    }
    // swscale's SIMD writers may store past the end of a row: convert into padded rows, then copy.
    const int row_bytes = frame.width * kRgbChannels;
    const int padded_row_bytes = (row_bytes + kRowPadding + kRowPadding - 1) / kRowPadding * kRowPadding;
    padded_.resize(static_cast<size_t>(padded_row_bytes) * (frame.height + 1));
    uint8_t* planes[4] = {padded_.data(), nullptr, nullptr, nullptr};
    const int strides[4] = {padded_row_bytes, 0, 0, 0};
    sws_scale(context_.get(), frame.data, frame.linesize, 0, frame.height, planes, strides);
    RgbImage image(frame.width, frame.height);
    for (int y = 0; y < frame.height; ++y) {
      std::memcpy(image.row(y), padded_.data() + static_cast<size_t>(y) * padded_row_bytes, row_bytes);
    }
    return image;
  }

 private:
  static constexpr int kRowPadding = 64;
  SwsPtr context_;
  std::vector<uint8_t> padded_;  // (height + 1, padded row)
  int width_ = 0, height_ = 0;
  AVPixelFormat format_ = AV_PIX_FMT_NONE;
  AVColorSpace colorspace_ = AVCOL_SPC_UNSPECIFIED;
};

// Decodes the frames at `indices` (ascending) of `index`.
absl::StatusOr<std::vector<RgbImage>> decode_frames(FrameDecoder& decoder, const FrameIndex& index,
                                                    const std::vector<int64_t>& indices,
                                                    const VideoDecodeLimits& limits) {
  const std::string& name = decoder.demuxer().name;
  RgbConverter converter;
  std::vector<RgbImage> frames;
  int64_t last_pts = INT64_MIN;  // of the last frame decoded
  bool can_seek = true;
  for (const int64_t i : indices) {
    const int64_t target = index.pts[i];
    // The key frame at or before the target; seek to it when the decoder has not reached it yet.
    auto key = std::upper_bound(index.key_pts.begin(), index.key_pts.end(), target);
    bool just_seeked = false;
    if (can_seek && key != index.key_pts.begin() && *std::prev(key) > last_pts) {
      just_seeked = decoder.seek(*std::prev(key));
      can_seek = just_seeked;
    }
    while (true) {
      PLM_ASSIGN_OR_RETURN(const AVFrame* frame, decoder.next());
      if (frame == nullptr) {
        return absl::DataLossError(absl::StrCat(name, ": frame ", i, " (of ", index.info.num_frames,
                                                " in the index) could not be decoded"));
      }
      const int64_t pts = pts_or_dts(frame->pts, frame->pkt_dts);
      if (just_seeked && pts > target) {
        // The demuxer landed past the target: restart from the first frame and stop seeking.
        if (!decoder.seek(index.key_pts.empty() ? index.pts.front() : index.key_pts.front())) {
          return absl::DataLossError(absl::StrCat(name, ": cannot go back to frame ", i));
        }
        can_seek = just_seeked = false;
        last_pts = INT64_MIN;
        continue;
      }
      just_seeked = false;
      last_pts = pts;
      if (pts < target) continue;
      if (static_cast<int64_t>(frame->width) * frame->height > limits.max_pixels_per_frame) {
        return absl::ResourceExhaustedError(absl::StrCat(name, ": a frame is ", frame->width, "x", frame->height,
                                                         ", more than ", limits.max_pixels_per_frame, " pixels"));
      }
      PLM_ASSIGN_OR_RETURN(RgbImage image, converter.convert(*frame, name));
      frames.push_back(std::move(image));
      break;
    }
  }
  return frames;
}

}  // namespace

absl::StatusOr<std::vector<int64_t>> sample_frame_indices(int64_t num_frames, double average_fps,
                                                          const FrameSampling& sampling) {
  if (sampling.num_frames && sampling.fps) {
    return absl::InvalidArgumentError("num_frames and fps are mutually exclusive; set only one");
  }
  int64_t count = num_frames;
  if (sampling.fps) {
    if (!(average_fps > 0)) return absl::InvalidArgumentError("sampling by fps needs the video's frame rate");
    // Python's int(total_num_frames / video_fps * fps): two double operations, then truncation.
    count = std::max<int64_t>(1, static_cast<int64_t>(num_frames / average_fps * *sampling.fps));
  } else if (sampling.num_frames) {
    count = sampling.at_most ? std::min(*sampling.num_frames, num_frames) : *sampling.num_frames;
  }
  if (count < 1 || count > num_frames) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot sample ", count, " frames from a video of ", num_frames, " frames"));
  }
  std::vector<int64_t> indices(count);
  for (int64_t k = 0; k < count; ++k) indices[k] = k * num_frames / count;
  return indices;
}

absl::StatusOr<DecodedVideo> decode_video_file(const std::filesystem::path& path, const FrameSampling& sampling,
                                               const VideoDecodeLimits& limits) {
  Deadline deadline;
  deadline.timeout_ms = limits.timeout_ms;
  deadline.end = std::chrono::steady_clock::now() + std::chrono::milliseconds(limits.timeout_ms);

  DecodedVideo video;
  FrameIndex index;
  {
    PLM_ASSIGN_OR_RETURN(const std::unique_ptr<Demuxer> demuxer, open_demuxer(path, deadline));
    const AVCodecParameters* parameters = demuxer->stream->codecpar;
    if (static_cast<int64_t>(parameters->width) * parameters->height > limits.max_pixels_per_frame) {
      return absl::ResourceExhaustedError(absl::StrCat(path.string(), ": frames are ", parameters->width, "x",
                                                       parameters->height, ", more than ",
                                                       limits.max_pixels_per_frame, " pixels"));
    }
    PLM_ASSIGN_OR_RETURN(index, scan_frames(*demuxer, limits));
  }
  if (index.info.truncated && limits.refuse_longer) {
    return absl::OutOfRangeError(absl::StrCat(path.string(), ": longer than the limit of ", limits.max_duration_s, " s"));
  }
  video.info = index.info;
  absl::StatusOr<std::vector<int64_t>> indices =
      sample_frame_indices(index.info.num_frames, index.info.average_fps, sampling);
  if (!indices.ok()) return absl::InvalidArgumentError(absl::StrCat(path.string(), ": ", indices.status().message()));
  if (static_cast<int64_t>(indices->size()) > limits.max_output_frames) {
    return absl::ResourceExhaustedError(absl::StrCat(path.string(), ": ", indices->size(),
                                                     " frames asked for, more than the limit of ",
                                                     limits.max_output_frames));
  }
  video.frame_indices = *std::move(indices);

  // A fresh demuxer for decoding: no seek back to the start is needed, so unseekable inputs work too.
  PLM_ASSIGN_OR_RETURN(std::unique_ptr<Demuxer> demuxer, open_demuxer(path, deadline));
  PLM_ASSIGN_OR_RETURN(const std::unique_ptr<FrameDecoder> decoder, FrameDecoder::open(std::move(demuxer)));
  PLM_ASSIGN_OR_RETURN(video.frames, decode_frames(*decoder, index, video.frame_indices, limits));
  return video;
}

}  // namespace plm::data
