#include "data/video_encode.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "data/ffmpeg_handles.h"
#include "data/ffmpeg_log.h"

namespace plm::data {
namespace {

constexpr const char* kEncoderName = "libx264";

std::string av_error_text(int code) {
  char text[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(code, text, sizeof(text));
  return text;
}

struct OutputCloser {
  void operator()(AVFormatContext* c) const {
    if (c->pb != nullptr) avio_closep(&c->pb);
    avformat_free_context(c);
  }
};

// One open mp4 file with one H.264 stream; write() encodes a frame, finish() flushes and writes the trailer.
class Mp4Writer {
 public:
  Mp4Writer(std::filesystem::path path, int width, int height, const VideoEncodeOptions& options)
      : path_(std::move(path)), width_(width), height_(height), options_(options) {}

  absl::Status open() {
    quiet_ffmpeg_log();
    AVFormatContext* output = nullptr;
    int code = avformat_alloc_output_context2(&output, nullptr, "mp4", path_.c_str());
    if (code < 0) return error("cannot set up the mp4 muxer", code);
    output_.reset(output);
    const AVCodec* codec = avcodec_find_encoder_by_name(kEncoderName);
    if (codec == nullptr)
      return absl::UnimplementedError(absl::StrCat(path_.string(), ": FFmpeg has no ", kEncoderName, " encoder"));
    encoder_.reset(avcodec_alloc_context3(codec));
    if (encoder_ == nullptr) return absl::ResourceExhaustedError(absl::StrCat(path_.string(), ": out of memory"));
    encoder_->width = width_;
    encoder_->height = height_;
    encoder_->pix_fmt = AV_PIX_FMT_YUV420P;
    encoder_->time_base = {1, options_.fps};
    encoder_->framerate = {options_.fps, 1};
    encoder_->max_b_frames = 0;                // packet k is frame k
    encoder_->thread_count = 1;                // the same bytes on every run
    encoder_->colorspace = AVCOL_SPC_BT470BG;  // what swscale's default RGB -> YUV matrix is (BT.601)
    encoder_->color_range = AVCOL_RANGE_MPEG;
    if ((output_->oformat->flags & AVFMT_GLOBALHEADER) != 0) encoder_->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    av_opt_set_int(encoder_->priv_data, "crf", options_.crf, 0);
    av_opt_set(encoder_->priv_data, "preset", "veryfast", 0);
    if ((code = avcodec_open2(encoder_.get(), codec, nullptr)) < 0) return error("cannot open the encoder", code);

    stream_ = avformat_new_stream(output_.get(), nullptr);
    if (stream_ == nullptr) return absl::ResourceExhaustedError(absl::StrCat(path_.string(), ": out of memory"));
    if ((code = avcodec_parameters_from_context(stream_->codecpar, encoder_.get())) < 0) {
      return error("cannot set the stream parameters", code);
    }
    stream_->time_base = encoder_->time_base;
    if ((code = avio_open(&output_->pb, path_.c_str(), AVIO_FLAG_WRITE)) < 0)
      return error("cannot open for writing", code);
    if ((code = avformat_write_header(output_.get(), nullptr)) < 0) return error("cannot write the header", code);

    frame_.reset(av_frame_alloc());
    packet_.reset(av_packet_alloc());
    if (frame_ == nullptr || packet_ == nullptr)
      return absl::ResourceExhaustedError(absl::StrCat(path_.string(), ": out of memory"));
    frame_->format = encoder_->pix_fmt;
    frame_->width = width_;
    frame_->height = height_;
    if ((code = av_frame_get_buffer(frame_.get(), 0)) < 0) return error("cannot allocate a frame", code);
    to_yuv_.reset(sws_getContext(width_, height_, AV_PIX_FMT_RGB24, width_, height_, AV_PIX_FMT_YUV420P,
                                 SWS_BICUBIC | SWS_ACCURATE_RND, nullptr, nullptr, nullptr));
    if (to_yuv_ == nullptr)
      return absl::InternalError(absl::StrCat(path_.string(), ": no RGB24 -> YUV420P conversion"));
    return absl::OkStatus();
  }

  absl::Status write(const RgbImage& image, int64_t index) {
    if (image.width != width_ || image.height != height_) {
      return absl::InvalidArgumentError(absl::StrCat(path_.string(), ": frame ", index, " is ", image.width, "x",
                                                     image.height, ", frame 0 is ", width_, "x", height_));
    }
    int code = av_frame_make_writable(frame_.get());
    if (code < 0) return error("cannot write a frame", code);
    const uint8_t* source[1] = {image.pixels.data()};
    const int source_stride[1] = {image.width * kRgbChannels};
    sws_scale(to_yuv_.get(), source, source_stride, 0, height_, frame_->data, frame_->linesize);
    frame_->pts = index;
    if ((code = avcodec_send_frame(encoder_.get(), frame_.get())) < 0) return error("cannot encode a frame", code);
    return drain();
  }

  absl::Status finish() {
    const int code = avcodec_send_frame(encoder_.get(), nullptr);
    if (code < 0) return error("cannot flush the encoder", code);
    PLM_RETURN_IF_ERROR(drain());
    const int trailer = av_write_trailer(output_.get());
    if (trailer < 0) return error("cannot write the trailer", trailer);
    return absl::OkStatus();
  }

 private:
  absl::Status error(const char* what, int code) const {
    return absl::InternalError(absl::StrCat(path_.string(), ": ", what, ": ", av_error_text(code)));
  }

  absl::Status drain() {
    while (true) {
      const int code = avcodec_receive_packet(encoder_.get(), packet_.get());
      if (code == AVERROR(EAGAIN) || code == AVERROR_EOF) return absl::OkStatus();
      if (code < 0) return error("encoding failed", code);
      // FFmpeg 5.1's mp4 muxer drops the last frame of packets without a duration (ENVIRONMENT.md, trap 2).
      if (packet_->duration == 0) packet_->duration = 1;
      av_packet_rescale_ts(packet_.get(), encoder_->time_base, stream_->time_base);
      packet_->stream_index = stream_->index;
      const int written = av_interleaved_write_frame(output_.get(), packet_.get());
      if (written < 0) return error("cannot write a packet", written);
    }
  }

  std::filesystem::path path_;
  int width_, height_;
  VideoEncodeOptions options_;
  std::unique_ptr<AVFormatContext, OutputCloser> output_;
  CodecPtr encoder_;
  AVStream* stream_ = nullptr;  // owned by output_
  FramePtr frame_;
  PacketPtr packet_;
  SwsPtr to_yuv_;
};

}  // namespace

absl::Status write_mp4_file(const std::filesystem::path& path, const std::vector<RgbImage>& frames,
                            const VideoEncodeOptions& options) {
  if (frames.empty()) return absl::InvalidArgumentError(absl::StrCat(path.string(), ": no frames to write"));
  const int width = frames[0].width, height = frames[0].height;
  if (width <= 0 || height <= 0 || width % 2 != 0 || height % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), ": frames are ", width, "x", height, "; 4:2:0 video needs even, nonzero sizes"));
  }
  if (options.fps <= 0) return absl::InvalidArgumentError(absl::StrCat(path.string(), ": fps ", options.fps, " <= 0"));
  Mp4Writer writer(path, width, height, options);
  PLM_RETURN_IF_ERROR(writer.open());
  for (size_t k = 0; k < frames.size(); ++k) PLM_RETURN_IF_ERROR(writer.write(frames[k], static_cast<int64_t>(k)));
  return writer.finish();
}

}  // namespace plm::data
