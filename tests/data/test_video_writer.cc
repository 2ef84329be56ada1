#include "tests/data/test_video_writer.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/pixdesc.h>
}

#include <cmath>
#include <cstring>
#include <memory>

#include "core/check.h"
#include "data/ffmpeg_handles.h"

namespace plm::testing {
namespace {

std::string av_text(int code) {
  char text[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(code, text, sizeof(text));
  return text;
}

using EncoderPtr = data::CodecPtr;

// One output file with one stream: set up the stream's codecpar, then open(), write(), finish().
class Muxer {
 public:
  Muxer(const std::filesystem::path& path, const std::string& container) : path_(path) {
    PLM_CHECK(avformat_alloc_output_context2(&context_, nullptr, container.c_str(), path.c_str()) >= 0)
        << "no muxer " << container;
    stream_ = avformat_new_stream(context_, nullptr);
    PLM_CHECK(stream_ != nullptr);
  }
  ~Muxer() {
    if (context_->pb != nullptr) avio_closep(&context_->pb);
    avformat_free_context(context_);
  }
  Muxer(const Muxer&) = delete;
  Muxer& operator=(const Muxer&) = delete;

  AVStream* stream() const { return stream_; }
  bool wants_global_header() const { return (context_->oformat->flags & AVFMT_GLOBALHEADER) != 0; }

  void open() {
    PLM_CHECK(avio_open(&context_->pb, path_.c_str(), AVIO_FLAG_WRITE) >= 0) << "cannot write " << path_;
    const int code = avformat_write_header(context_, nullptr);
    PLM_CHECK(code >= 0) << path_ << ": " << av_text(code);
  }
  void write(AVPacket* packet) {
    packet->stream_index = stream_->index;
    const int code = av_write_frame(context_, packet);
    PLM_CHECK(code >= 0) << path_ << ": " << av_text(code);
  }
  void finish() {
    const int code = av_write_trailer(context_);
    PLM_CHECK(code >= 0) << path_ << ": " << av_text(code);
  }

 private:
  std::filesystem::path path_;
  AVFormatContext* context_ = nullptr;
  AVStream* stream_ = nullptr;
};

EncoderPtr open_encoder(const AVCodec* codec, const VideoSegment& segment, const TestVideoSpec& spec,
                        bool global_header) {
  EncoderPtr encoder(avcodec_alloc_context3(codec));
  PLM_CHECK(encoder != nullptr && codec->pix_fmts != nullptr) << spec.codec;
  encoder->width = segment.width;
  encoder->height = segment.height;
  encoder->pix_fmt = codec->pix_fmts[0];
  encoder->time_base = {1, spec.fps};
  encoder->framerate = {spec.fps, 1};
  encoder->gop_size = spec.gop_size;
  encoder->max_b_frames = 0;  // decode order = presentation order, so packet k is frame k
  encoder->thread_count = 1;  // the same bytes on every run
  if (global_header) encoder->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  const int code = avcodec_open2(encoder.get(), codec, nullptr);
  PLM_CHECK(code >= 0) << spec.codec << ": " << av_text(code);
  return encoder;
}

void fill_frame(AVFrame& frame, int64_t k) {
  PLM_CHECK(av_frame_make_writable(&frame) >= 0);
  const AVPixFmtDescriptor* format = av_pix_fmt_desc_get(static_cast<AVPixelFormat>(frame.format));
  for (int y = 0; y < frame.height; ++y) {
    for (int x = 0; x < frame.width; ++x) frame.data[0][y * frame.linesize[0] + x] = (3 * x + 2 * y + 17 * k) & 255;
  }
  const int chroma_width = AV_CEIL_RSHIFT(frame.width, format->log2_chroma_w);
  const int chroma_height = AV_CEIL_RSHIFT(frame.height, format->log2_chroma_h);
  for (int plane = 1; plane <= 2; ++plane) {
    const int value = plane == 1 ? 128 + (37 * k) % 64 - 32 : 128 - (23 * k) % 64 + 32;
    for (int y = 0; y < chroma_height; ++y) std::memset(frame.data[plane] + y * frame.linesize[plane], value, chroma_width);
  }
}

class VideoWriter {
 public:
  VideoWriter(const std::filesystem::path& path, const TestVideoSpec& spec) : spec_(spec), muxer_(path, spec.container) {}

  void write() {
    const AVCodec* codec = avcodec_find_encoder_by_name(spec_.codec.c_str());
    PLM_CHECK(codec != nullptr) << "no encoder " << spec_.codec;
    data::FramePtr frame(av_frame_alloc());
    int64_t frame_index = 0;
    for (const VideoSegment& segment : spec_.segments) {
      EncoderPtr encoder = open_encoder(codec, segment, spec_, muxer_.wants_global_header());
      if (frame_index == 0) open_muxer(*encoder);
      av_frame_unref(frame.get());
      frame->format = encoder->pix_fmt;
      frame->width = segment.width;
      frame->height = segment.height;
      PLM_CHECK(av_frame_get_buffer(frame.get(), 0) >= 0);
      for (int i = 0; i < segment.num_frames; ++i, ++frame_index) {
        fill_frame(*frame, frame_index + spec_.pattern_offset);
        frame->pts = frame_index;
        PLM_CHECK(avcodec_send_frame(encoder.get(), frame.get()) >= 0);
        drain(*encoder);
      }
      PLM_CHECK(avcodec_send_frame(encoder.get(), nullptr) >= 0);
      drain(*encoder);
    }
    muxer_.finish();
  }

 private:
  void open_muxer(const AVCodecContext& encoder) {
    AVStream* stream = muxer_.stream();
    PLM_CHECK(avcodec_parameters_from_context(stream->codecpar, &encoder) >= 0);
    stream->time_base = encoder.time_base;
    if (spec_.unknown_fourcc) {
      const std::string& tag = *spec_.unknown_fourcc;
      PLM_CHECK(tag.size() == 4) << tag;
      stream->codecpar->codec_id = AV_CODEC_ID_NONE;
      stream->codecpar->codec_tag = MKTAG(tag[0], tag[1], tag[2], tag[3]);
    }
    muxer_.open();
  }

  // Writes every packet the encoder has ready (packet k is frame k), with the spec's flags and damage.
  void drain(AVCodecContext& encoder) {
    data::PacketPtr packet(av_packet_alloc());
    while (avcodec_receive_packet(&encoder, packet.get()) == 0) {
      const int64_t k = num_packets_++;
      PLM_CHECK(packet->pts == k) << "the encoder reordered frames";
      packet->dts = k;  // MPEG-2's encoder reports one frame of (unused) reordering delay
      packet->duration = 1;
      if (spec_.fake_key_packets.contains(k)) packet->flags |= AV_PKT_FLAG_KEY;
      if (spec_.zeroed_packets.contains(k)) std::memset(packet->data, 0, packet->size);
      av_packet_rescale_ts(packet.get(), {1, spec_.fps}, muxer_.stream()->time_base);
      muxer_.write(packet.get());
      av_packet_unref(packet.get());
    }
  }

  const TestVideoSpec& spec_;
  Muxer muxer_;
  int64_t num_packets_ = 0;
};

}  // namespace

void write_test_video(const std::filesystem::path& path, const TestVideoSpec& spec) {
  VideoWriter(path, spec).write();
}

void write_test_audio(const std::filesystem::path& path) {
  constexpr int kSampleRate = 8000;
  Muxer muxer(path, "wav");
  AVCodecParameters* parameters = muxer.stream()->codecpar;
  parameters->codec_type = AVMEDIA_TYPE_AUDIO;
  parameters->codec_id = AV_CODEC_ID_PCM_S16LE;
  parameters->sample_rate = kSampleRate;
  parameters->bits_per_coded_sample = 16;
  parameters->block_align = 2;
  av_channel_layout_default(&parameters->ch_layout, 1);
  muxer.stream()->time_base = {1, kSampleRate};
  muxer.open();
  data::PacketPtr packet(av_packet_alloc());
  PLM_CHECK(av_new_packet(packet.get(), 2 * kSampleRate) >= 0);
  for (int i = 0; i < kSampleRate; ++i) {
    const auto sample = static_cast<int16_t>(8000 * std::sin(2 * M_PI * 440 * i / kSampleRate));
    std::memcpy(packet->data + 2 * i, &sample, 2);  // little-endian hosts only, as the rest of plm
  }
  packet->pts = packet->dts = 0;
  packet->duration = kSampleRate;
  muxer.write(packet.get());
  muxer.finish();
}

}  // namespace plm::testing
