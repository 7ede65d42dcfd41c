// Video output: encoder + muxer, other streams of the input copied alongside.
//
// The file is written as `.NAME.upframe-tmp.EXT` beside the final path and renamed in
// finish(). The upscaled video is stream #0; the input's audio, subtitle, attachment and
// cover-art streams follow where the container takes their codec (avformat_query_codec).
// They are read with a second demuxer, one packet ahead, and written just before the first
// video packet that comes after them, so memory stays bounded. Subtitles are copied, never
// converted: SubRip into mp4 (which only takes mov_text) and mov_text into Matroska are
// dropped with a note.
//
// Resumable output (SPEC section 8) uses the same class twice: segment mode encodes one
// segment's frames with a fresh encoder into a segment file (packets with exact timestamps,
// no container, so no muxer rounds or shifts them), and join mode remuxes the segment files'
// packets, in order, into the final container with the other streams copied as above.
//
// Segment file: "UPFSEG01", the number of header fields and the fields (int64: codec
// parameters and time base, see kSegmentFields), the extradata, the stream side data, then
// one record a packet (pts, dts, duration, flags, size, bytes) and an end record (size -1).
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <unistd.h>
#include <algorithm>
#include <array>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>

#include "media/libav_helpers.hpp"
#include "upframe/cuda_device.hpp"
#include "upframe/error.hpp"
#include "upframe/media/frame_sink.hpp"

extern "C" {
#include <libavfilter/avfilter.h>
#include <libavfilter/buffersink.h>
#include <libavfilter/buffersrc.h>
#include <libavutil/avstring.h>
#include <libavutil/mastering_display_metadata.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
}

namespace upframe {

using namespace media;
namespace fs = std::filesystem;

namespace {

constexpr std::array<const char*, 8> kKnownEncoders = {"libx264",    "libx265",    "libsvtav1",
                                                       "libaom-av1", "libvpx-vp9", "ffv1",
                                                       "h264_nvenc", "hevc_nvenc"};
constexpr const char* kKnownEncoderList =
    "libx264, libx265, libsvtav1, libaom-av1, libvpx-vp9, ffv1, h264_nvenc, hevc_nvenc";

bool valid(AVRational r) { return r.num > 0 && r.den > 0; }

bool codec_takes(const AVCodec* codec, AVPixelFormat format) {
  if (!codec->pix_fmts) return true;
  for (const AVPixelFormat* f = codec->pix_fmts; *f != AV_PIX_FMT_NONE; ++f)
    if (*f == format) return true;
  return false;
}

// The input's format when the encoder takes it, else the closest it does (depth and alpha
// kept where possible: 10-bit 4:2:2 into libsvtav1 becomes yuv420p10le). A stream that was
// RGB or a palette (GIF, APNG, WebP; decoded to 4:4:4 for the pipeline) goes to 4:2:0 for a
// delivery codec, which players decode everywhere (4:4:4 H.264 or VP9 profile 1 often not);
// ffv1 keeps 4:4:4 and alpha.
AVPixelFormat encoder_pixel_format(const AVCodec* codec, AVPixelFormat source,
                                   AVPixelFormat stream_format = AV_PIX_FMT_NONE) {
  const AVPixFmtDescriptor* stream = av_pix_fmt_desc_get(stream_format);
  if (stream && (stream->flags & (AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_PAL)) &&
      codec->id != AV_CODEC_ID_FFV1) {
    const AVPixelFormat planar =
        pixel_format_bit_depth(source) > 8 ? AV_PIX_FMT_YUV420P10LE : AV_PIX_FMT_YUV420P;
    if (codec_takes(codec, planar)) return planar;
  }
  if (codec_takes(codec, source)) return source;
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(source);
  const bool alpha = desc && (desc->flags & AV_PIX_FMT_FLAG_ALPHA);
  AVPixelFormat best = avcodec_find_best_pix_fmt_of_list(codec->pix_fmts, source, alpha, nullptr);
  return best == AV_PIX_FMT_NONE ? codec->pix_fmts[0] : best;
}

// Tags that describe the input file rather than its content.
bool is_stale_tag(const std::string& key) {
  static const char* const kStale[] = {
      "encoder", "major_brand", "minor_version",    "compatible_brands",
      "BPS",     "DURATION",    "NUMBER_OF_FRAMES", "NUMBER_OF_BYTES"};
  for (const char* stale : kStale)
    if (av_strcasecmp(key.c_str(), stale) == 0) return true;
  return key.rfind("_STATISTICS", 0) == 0;
}

void copy_metadata(AVDictionary** to, const AVDictionary* from) {
  const AVDictionaryEntry* entry = nullptr;
  while ((entry = av_dict_get(from, "", entry, AV_DICT_IGNORE_SUFFIX)))
    if (!is_stale_tag(entry->key)) av_dict_set(to, entry->key, entry->value, 0);
}

// x265 takes HDR10 static metadata as parameters (FFmpeg 5.1's wrapper does not read the
// frames' side data).
std::string x265_hdr_params(const AVFrame* frame) {
  std::string params;
  if (const AVFrameSideData* sd =
          av_frame_get_side_data(frame, AV_FRAME_DATA_MASTERING_DISPLAY_METADATA)) {
    const auto* m = reinterpret_cast<const AVMasteringDisplayMetadata*>(sd->data);
    if (m->has_primaries && m->has_luminance) {
      auto chroma = [](AVRational v) { return static_cast<long>(av_q2d(v) * 50000 + 0.5); };
      auto luma = [](AVRational v) { return static_cast<long>(av_q2d(v) * 10000 + 0.5); };
      char text[256];
      // display_primaries is R, G, B; x265 wants G, B, R.
      std::snprintf(text, sizeof(text),
                    "master-display=G(%ld,%ld)B(%ld,%ld)R(%ld,%ld)WP(%ld,%ld)L(%ld,%ld):",
                    chroma(m->display_primaries[1][0]), chroma(m->display_primaries[1][1]),
                    chroma(m->display_primaries[2][0]), chroma(m->display_primaries[2][1]),
                    chroma(m->display_primaries[0][0]), chroma(m->display_primaries[0][1]),
                    chroma(m->white_point[0]), chroma(m->white_point[1]), luma(m->max_luminance),
                    luma(m->min_luminance));
      params += text;
    }
  }
  if (const AVFrameSideData* sd =
          av_frame_get_side_data(frame, AV_FRAME_DATA_CONTENT_LIGHT_LEVEL)) {
    const auto* c = reinterpret_cast<const AVContentLightMetadata*>(sd->data);
    params += "max-cll=" + std::to_string(c->MaxCLL) + "," + std::to_string(c->MaxFALL) + ":";
  }
  return params;
}

struct StreamSideData {
  int64_t type;  // AVPacketSideDataType
  std::string bytes;
};

// HDR static metadata of the first frame, for the stream (muxers write it: Matroska, mp4).
std::vector<StreamSideData> hdr_side_data(const AVFrame* frame) {
  struct Pair {
    AVFrameSideDataType frame_type;
    AVPacketSideDataType stream_type;
  };
  std::vector<StreamSideData> out;
  for (Pair pair :
       {Pair{AV_FRAME_DATA_MASTERING_DISPLAY_METADATA, AV_PKT_DATA_MASTERING_DISPLAY_METADATA},
        Pair{AV_FRAME_DATA_CONTENT_LIGHT_LEVEL, AV_PKT_DATA_CONTENT_LIGHT_LEVEL}}) {
    const AVFrameSideData* sd = av_frame_get_side_data(frame, pair.frame_type);
    if (!sd) continue;
    out.push_back(
        {pair.stream_type, std::string(reinterpret_cast<const char*>(sd->data), sd->size)});
  }
  return out;
}

// --- audio re-encoding, for a container that cannot hold the source's codec ---

struct GraphFreer {
  void operator()(AVFilterGraph* g) const { avfilter_graph_free(&g); }
};

// The encoder a container takes for audio: its default audio codec (webm: Opus, mp4: AAC),
// by the libraries' names where FFmpeg's own encoder is experimental (opus, vorbis).
const AVCodec* audio_encoder_for(const AVOutputFormat* format) {
  if (format->audio_codec == AV_CODEC_ID_OPUS) return avcodec_find_encoder_by_name("libopus");
  if (format->audio_codec == AV_CODEC_ID_VORBIS) return avcodec_find_encoder_by_name("libvorbis");
  if (format->audio_codec == AV_CODEC_ID_NONE) return nullptr;
  return avcodec_find_encoder(format->audio_codec);
}

// Decode -> resample/reformat/re-frame (libavfilter: aresample, aformat, the encoder's frame
// size at the sink) -> encode, one input audio stream into one output stream.
class AudioTranscoder {
 public:
  AudioTranscoder(const std::string& file, const AVStream* from, const AVCodec* encoder,
                  bool global_header)
      : file_(file), from_(from) {
    const AVCodec* decoder = avcodec_find_decoder(from->codecpar->codec_id);
    if (!decoder) fail("no decoder for it");
    dec_.reset(avcodec_alloc_context3(decoder));
    if (!dec_ || avcodec_parameters_to_context(dec_.get(), from->codecpar) < 0)
      fail("cannot set up its decoder");
    dec_->pkt_timebase = from->time_base;
    check(avcodec_open2(dec_.get(), decoder, nullptr), "open its decoder");

    enc_.reset(avcodec_alloc_context3(encoder));
    if (!enc_) fail("out of memory");
    int rate = dec_->sample_rate > 0 ? dec_->sample_rate : 48000;
    if (encoder->supported_samplerates) {
      int best = encoder->supported_samplerates[0];
      for (const int* r = encoder->supported_samplerates; *r; ++r)
        if (*r == 48000 || *r == rate) best = *r;
      for (const int* r = encoder->supported_samplerates; *r; ++r)
        if (*r == rate) best = rate;
      rate = best;
    }
    enc_->sample_rate = rate;
    enc_->sample_fmt = encoder->sample_fmts ? encoder->sample_fmts[0] : dec_->sample_fmt;
    if (dec_->ch_layout.nb_channels > 0 && dec_->ch_layout.nb_channels <= 2)
      av_channel_layout_copy(&enc_->ch_layout, &dec_->ch_layout);
    else
      av_channel_layout_default(&enc_->ch_layout, 2);  // more than stereo: downmixed
    if (enc_->ch_layout.order != AV_CHANNEL_ORDER_NATIVE)
      av_channel_layout_default(&enc_->ch_layout, enc_->ch_layout.nb_channels);
    enc_->bit_rate = 64000LL * enc_->ch_layout.nb_channels;
    enc_->time_base = AVRational{1, rate};
    if (global_header) enc_->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    check(avcodec_open2(enc_.get(), encoder, nullptr), std::string("open ") + encoder->name);
    set_up_graph();
  }
  const AVCodecContext* encoder() const { return enc_.get(); }

  // Feeds one packet (null: the end) and writes every finished output packet.
  void send(const AVPacket* packet, const std::function<void(AVPacket*)>& write) {
    int err = avcodec_send_packet(dec_.get(), packet);
    if (err < 0 && err != AVERROR_EOF) {
      if (packet) return;  // a damaged audio packet: skipped, as a player would
    }
    AVFrame* frame = av_frame_alloc();
    Frame owner = Frame::adopt(frame);
    while (avcodec_receive_frame(dec_.get(), frame) >= 0) {
      frame->pts = frame->best_effort_timestamp;
      check(av_buffersrc_add_frame(src_, frame), "filter");
      pull(write);
    }
    if (!packet) {
      check(av_buffersrc_add_frame(src_, nullptr), "filter");
      pull(write);
      avcodec_send_frame(enc_.get(), nullptr);
      drain(write);
    }
  }

 private:
  void set_up_graph() {
    graph_.reset(avfilter_graph_alloc());
    if (!graph_) fail("out of memory");
    char layout[128] = {0};
    av_channel_layout_describe(&dec_->ch_layout, layout, sizeof layout);
    const std::string in_args =
        "time_base=" + std::to_string(from_->time_base.num) + "/" +
        std::to_string(from_->time_base.den) + ":sample_rate=" + std::to_string(dec_->sample_rate) +
        ":sample_fmt=" + av_get_sample_fmt_name(dec_->sample_fmt) + ":channel_layout=" + layout;
    check(avfilter_graph_create_filter(&src_, avfilter_get_by_name("abuffer"), "in",
                                       in_args.c_str(), nullptr, graph_.get()),
          "abuffer");
    char out_layout[128] = {0};
    av_channel_layout_describe(&enc_->ch_layout, out_layout, sizeof out_layout);
    const std::string format_args =
        std::string("sample_fmts=") + av_get_sample_fmt_name(enc_->sample_fmt) +
        ":sample_rates=" + std::to_string(enc_->sample_rate) + ":channel_layouts=" + out_layout;
    AVFilterContext* resample = nullptr;
    AVFilterContext* format = nullptr;
    check(avfilter_graph_create_filter(&resample, avfilter_get_by_name("aresample"), "resample",
                                       nullptr, nullptr, graph_.get()),
          "aresample");
    check(avfilter_graph_create_filter(&format, avfilter_get_by_name("aformat"), "format",
                                       format_args.c_str(), nullptr, graph_.get()),
          "aformat");
    check(avfilter_graph_create_filter(&sink_, avfilter_get_by_name("abuffersink"), "out", nullptr,
                                       nullptr, graph_.get()),
          "abuffersink");
    check(avfilter_link(src_, 0, resample, 0), "link");
    check(avfilter_link(resample, 0, format, 0), "link");
    check(avfilter_link(format, 0, sink_, 0), "link");
    check(avfilter_graph_config(graph_.get(), nullptr), "configure");
    if (enc_->frame_size > 0 && !(enc_->codec->capabilities & AV_CODEC_CAP_VARIABLE_FRAME_SIZE))
      av_buffersink_set_frame_size(sink_, unsigned(enc_->frame_size));
  }
  void pull(const std::function<void(AVPacket*)>& write) {
    AVFrame* frame = av_frame_alloc();
    Frame owner = Frame::adopt(frame);
    for (;;) {
      int err = av_buffersink_get_frame(sink_, frame);
      if (err == AVERROR(EAGAIN) || err == AVERROR_EOF) return;
      check(err, "filter");
      if (frame->pts != AV_NOPTS_VALUE)
        frame->pts = av_rescale_q(frame->pts, av_buffersink_get_time_base(sink_), enc_->time_base);
      check(avcodec_send_frame(enc_.get(), frame), "encode");
      av_frame_unref(frame);
      drain(write);
    }
  }
  void drain(const std::function<void(AVPacket*)>& write) {
    PacketPtr packet = make_packet();
    for (;;) {
      int err = avcodec_receive_packet(enc_.get(), packet.get());
      if (err == AVERROR(EAGAIN) || err == AVERROR_EOF) return;
      check(err, "encode");
      write(packet.get());
      av_packet_unref(packet.get());
    }
  }
  void check(int err, const std::string& what) const {
    if (err < 0) fail("cannot " + what + ": " + av_error_string(err));
  }
  [[noreturn]] void fail(const std::string& problem) const {
    throw Error(file_, "re-encoding audio stream #" + std::to_string(from_->index) + ": " + problem,
                ExitCode::kProcessingFailed, "save");
  }
  std::string file_;
  const AVStream* from_;
  CodecContextPtr dec_;
  CodecContextPtr enc_;
  std::unique_ptr<AVFilterGraph, GraphFreer> graph_;
  AVFilterContext* src_ = nullptr;
  AVFilterContext* sink_ = nullptr;
};

// --- segment files ---

constexpr char kSegmentMagic[8] = {'U', 'P', 'F', 'S', 'E', 'G', '0', '1'};

// The codec parameters a segment file keeps, with the time base of its packets.
struct SegmentHeader {
  AVCodecParameters* par = nullptr;  // owned
  AVRational time_base{0, 1};
  std::vector<StreamSideData> side_data;
  SegmentHeader() : par(avcodec_parameters_alloc()) {}
  ~SegmentHeader() { avcodec_parameters_free(&par); }
  SegmentHeader(const SegmentHeader&) = delete;
  SegmentHeader& operator=(const SegmentHeader&) = delete;
};

std::vector<int64_t> segment_fields(const SegmentHeader& h) {
  const AVCodecParameters* p = h.par;
  return {p->codec_type,
          p->codec_id,
          p->format,
          p->width,
          p->height,
          p->sample_aspect_ratio.num,
          p->sample_aspect_ratio.den,
          p->field_order,
          p->color_range,
          p->color_primaries,
          p->color_trc,
          p->color_space,
          p->chroma_location,
          p->profile,
          p->level,
          p->bits_per_raw_sample,
          p->bits_per_coded_sample,
          p->video_delay,
          p->bit_rate,
          h.time_base.num,
          h.time_base.den};
}

void set_segment_fields(SegmentHeader& h, const std::vector<int64_t>& f) {
  AVCodecParameters* p = h.par;
  size_t i = 0;
  p->codec_type = AVMediaType(f[i++]);
  p->codec_id = AVCodecID(f[i++]);
  p->format = int(f[i++]);
  p->width = int(f[i++]);
  p->height = int(f[i++]);
  p->sample_aspect_ratio.num = int(f[i++]);
  p->sample_aspect_ratio.den = int(f[i++]);
  p->field_order = AVFieldOrder(f[i++]);
  p->color_range = AVColorRange(f[i++]);
  p->color_primaries = AVColorPrimaries(f[i++]);
  p->color_trc = AVColorTransferCharacteristic(f[i++]);
  p->color_space = AVColorSpace(f[i++]);
  p->chroma_location = AVChromaLocation(f[i++]);
  p->profile = int(f[i++]);
  p->level = int(f[i++]);
  p->bits_per_raw_sample = int(f[i++]);
  p->bits_per_coded_sample = int(f[i++]);
  p->video_delay = int(f[i++]);
  p->bit_rate = f[i++];
  h.time_base.num = int(f[i++]);
  h.time_base.den = int(f[i++]);
}

class SegmentWriter {
 public:
  explicit SegmentWriter(FILE* file) : file_(file) {}
  void i64(int64_t v) { bytes(&v, sizeof v); }
  void bytes(const void* data, size_t size) {
    if (size && std::fwrite(data, 1, size, file_) != size) ok_ = false;
  }
  void blob(const void* data, size_t size) {
    i64(int64_t(size));
    bytes(data, size);
  }
  bool ok() const { return ok_; }

 private:
  FILE* file_;
  bool ok_ = true;
};

class SegmentReader {
 public:
  SegmentReader(FILE* file, std::string name) : file_(file), name_(std::move(name)) {}
  int64_t i64() {
    int64_t v = 0;
    bytes(&v, sizeof v);
    return v;
  }
  void bytes(void* data, size_t size) {
    if (size && std::fread(data, 1, size, file_) != size)
      throw Error(name_, "segment file is cut short", ExitCode::kProcessingFailed, "save");
  }
  std::string blob(int64_t limit) {
    int64_t size = i64();
    if (size < 0 || size > limit)
      throw Error(name_, "segment file is corrupt", ExitCode::kProcessingFailed, "save");
    std::string out(size_t(size), '\0');
    bytes(out.data(), out.size());
    return out;
  }

 private:
  FILE* file_;
  std::string name_;
};

struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};
using FilePtr = std::unique_ptr<FILE, FileCloser>;

enum class SinkMode { kDirect, kSegment, kJoin };

class VideoSink final : public FrameSink {
 public:
  // `container` names the final output (its extension picks the container); it is `output`
  // except in segment mode.
  VideoSink(SinkMode mode, const fs::path& output, const fs::path& container, const VideoInfo& in,
            int width, int height, const VideoSinkOptions& options);
  ~VideoSink() override {
    if (!finished_) abort();
  }
  void write_unique(int64_t index, const Frame& frame, int64_t pts) override {
    encode(index, frame, pts);
  }
  void write_duplicate(int64_t index, int64_t, const Frame& frame, int64_t pts) override {
    encode(index, frame, pts);
  }
  void finish() override;
  void abort() noexcept override;
  std::vector<std::string> notes() const override { return notes_; }
  // Join mode: remuxes the packets of one segment file.
  void append_segment(const fs::path& segment);

 private:
  [[noreturn]] void fail(const std::string& problem, int64_t index = -1) const {
    throw Error(final_.string(), problem, ExitCode::kProcessingFailed, "save", index);
  }
  void set_up_copies();
  void open_encoder(const Frame& first);
  void set_up_video_stream(const AVCodecParameters* par, AVRational time_base,
                           const std::vector<StreamSideData>& side_data);
  void write_segment_header(const AVFrame* first);
  void write_segment_packet(const AVPacket* packet);
  void finish_segment();
  void encode(int64_t index, const Frame& frame, int64_t pts);
  void drain(int64_t index);
  void copy_until(int64_t ts, AVRational time_base);
  void transcode(int input_index, const AVPacket* packet);
  void close_output() noexcept;

  SinkMode mode_;
  fs::path final_;
  fs::path temporary_;
  const AVOutputFormat* format_ = nullptr;
  FILE* segment_file_ = nullptr;        // segment mode
  std::vector<int64_t> joined_fields_;  // join mode: the first segment's, to check the others
  std::string joined_extradata_;
  int64_t last_joined_dts_ = AV_NOPTS_VALUE;
  VideoInfo in_;
  int width_;
  int height_;
  VideoSinkOptions options_;
  std::string encoder_name_;
  const AVCodec* codec_ = nullptr;
  AVFormatContext* out_ = nullptr;
  AVStream* video_stream_ = nullptr;
  CodecContextPtr encoder_;
  PixelConverter converter_;
  PacketPtr packet_ = make_packet();
  int64_t last_pts_ = AV_NOPTS_VALUE;
  // The second demuxer that feeds the copied streams; copy_map_[input] = output index or -1.
  InputContextPtr copy_input_;
  std::vector<int> copy_map_;
  // Audio streams the container cannot hold as they are, by input index: re-encoded.
  std::map<int, std::unique_ptr<AudioTranscoder>> transcoders_;
  PacketPtr copy_packet_ = make_packet();
  bool copy_pending_ = false;
  bool copy_done_ = true;
  bool finished_ = false;
  std::vector<std::string> notes_;
};

VideoSink::VideoSink(SinkMode mode, const fs::path& output, const fs::path& container,
                     const VideoInfo& in, int width, int height, const VideoSinkOptions& options)
    : mode_(mode),
      final_(output),
      temporary_(temporary_sibling(output)),
      in_(in),
      width_(width),
      height_(height),
      options_(options) {
  std::error_code ec;
  if (mode_ != SinkMode::kSegment && fs::exists(final_, ec)) {
    if (!options_.overwrite) fail("the output already exists (use -y to overwrite)");
    if (!in_.path.empty() && fs::equivalent(final_, in_.path, ec))
      fail("the output is the input file");
    if (fs::is_directory(final_, ec)) fail("the output is a folder, not a video file");
  }
  const AVOutputFormat* format = av_guess_format(nullptr, container.c_str(), nullptr);
  format_ = format;
  if (!format)
    throw UsageError(container.string(),
                     "no container for the extension '" + container.extension().string() + "'");
  encoder_name_ = resolve_encoder(options_.encoder, in_.bit_depth, container);
  codec_ = avcodec_find_encoder_by_name(encoder_name_.c_str());
  if (avformat_query_codec(format, codec_->id, FF_COMPLIANCE_NORMAL) == 0)
    throw UsageError(final_.string(), container_refusal(container, encoder_name_));
  notes_.push_back("encoder " + encoder_name_);
  if (mode_ == SinkMode::kSegment) {
    segment_file_ = std::fopen(temporary_.c_str(), "wb");
    if (!segment_file_)
      fail("cannot write in " + final_.parent_path().string() + ": " + std::strerror(errno));
    return;
  }

  int err = avformat_alloc_output_context2(&out_, format, nullptr, temporary_.c_str());
  if (err < 0 || !out_) fail("cannot set up the output: " + av_error_string(err));
  video_stream_ = avformat_new_stream(out_, nullptr);
  if (!video_stream_) fail("out of memory adding a stream");
  if (!(format->flags & AVFMT_NOFILE)) {
    err = avio_open(&out_->pb, temporary_.c_str(), AVIO_FLAG_WRITE);
    if (err < 0) {
      avformat_free_context(out_);
      out_ = nullptr;
      fail("cannot write in " + final_.parent_path().string() + ": " + av_error_string(err));
    }
  }
  set_up_copies();
}

void VideoSink::set_up_copies() {
  if (in_.path.empty()) return;
  try {
    copy_input_ = open_input(in_.path);
  } catch (const Error& e) {
    notes_.push_back(std::string("other streams not copied: ") + e.what());
    return;
  }
  AVFormatContext* input = copy_input_.get();
  copy_metadata(&out_->metadata, input->metadata);

  // Chapters (the muxer frees them with the context).
  if (input->nb_chapters > 0) {
    out_->chapters = static_cast<AVChapter**>(av_calloc(input->nb_chapters, sizeof(AVChapter*)));
    for (unsigned i = 0; out_->chapters && i < input->nb_chapters; ++i) {
      const AVChapter* from = input->chapters[i];
      auto* to = static_cast<AVChapter*>(av_mallocz(sizeof(AVChapter)));
      if (!to) break;
      to->id = from->id;
      to->time_base = from->time_base;
      to->start = from->start;
      to->end = from->end;
      av_dict_copy(&to->metadata, from->metadata, 0);
      out_->chapters[out_->nb_chapters++] = to;
    }
  }

  const std::string container = out_->oformat->name;
  copy_map_.assign(input->nb_streams, -1);
  for (unsigned i = 0; i < input->nb_streams; ++i) {
    AVStream* from = input->streams[i];
    from->discard = AVDISCARD_ALL;
    if (static_cast<int>(i) == in_.stream_index) continue;
    const AVCodecParameters* par = from->codecpar;
    const std::string codec = avcodec_get_name(par->codec_id);
    auto drop = [&](const std::string& reason) {
      notes_.push_back("stream #" + std::to_string(i) + " (" + codec + ") dropped: " + reason);
    };
    if (!options_.copy_other_streams) {
      drop("copying other streams is off");
      continue;
    }
    const bool cover =
        par->codec_type == AVMEDIA_TYPE_VIDEO && (from->disposition & AV_DISPOSITION_ATTACHED_PIC);
    if (par->codec_type == AVMEDIA_TYPE_VIDEO && !cover) {
      drop("another video stream (only the upscaled one is written)");
      continue;
    }
    if (par->codec_type == AVMEDIA_TYPE_ATTACHMENT) {
      if (container != "matroska") {
        drop("the " + container + " container holds no attachments");
        continue;
      }
    } else if (par->codec_type != AVMEDIA_TYPE_AUDIO && par->codec_type != AVMEDIA_TYPE_SUBTITLE &&
               !cover) {
      drop("a data stream (not copied)");
      continue;
    } else if (avformat_query_codec(out_->oformat, par->codec_id, FF_COMPLIANCE_NORMAL) != 1) {
      const AVCodec* audio = par->codec_type == AVMEDIA_TYPE_AUDIO && !cover
                                 ? audio_encoder_for(out_->oformat)
                                 : nullptr;
      if (!audio) {
        drop("the " + container + " container cannot hold " + codec);
        continue;
      }
      // Re-encoded (the one log line is this note, logged with the job's notes).
      auto transcoder = std::make_unique<AudioTranscoder>(
          final_.string(), from, audio, (out_->oformat->flags & AVFMT_GLOBALHEADER) != 0);
      AVStream* to = avformat_new_stream(out_, nullptr);
      if (!to || avcodec_parameters_from_context(to->codecpar, transcoder->encoder()) < 0)
        fail("cannot set up the re-encoded stream #" + std::to_string(i));
      to->time_base = transcoder->encoder()->time_base;
      to->disposition = from->disposition;
      copy_metadata(&to->metadata, from->metadata);
      notes_.push_back("stream #" + std::to_string(i) + " (" + codec + ") re-encoded to " +
                       audio->name + ": the " + container + " container cannot hold " + codec);
      transcoders_[int(i)] = std::move(transcoder);
      from->discard = AVDISCARD_DEFAULT;
      copy_map_[i] = to->index;
      copy_done_ = false;
      continue;
    }
    AVStream* to = avformat_new_stream(out_, nullptr);
    if (!to || avcodec_parameters_copy(to->codecpar, par) < 0)
      fail("cannot copy stream #" + std::to_string(i));
    to->codecpar->codec_tag = 0;
    to->time_base = from->time_base;
    to->disposition = from->disposition;
    av_dict_copy(&to->metadata, from->metadata, 0);
    if (par->codec_type != AVMEDIA_TYPE_ATTACHMENT) {
      // Cover art comes as one queued packet at the start, like ffmpeg's stream copy.
      from->discard = AVDISCARD_DEFAULT;
      copy_map_[i] = to->index;
      copy_done_ = false;
    }
  }
}

void VideoSink::open_encoder(const Frame& first) {
  encoder_.reset(avcodec_alloc_context3(codec_));
  if (!encoder_) fail("out of memory allocating an encoder");
  AVCodecContext* ctx = encoder_.get();
  const AVFrame* f = first.av();
  if (first.width() != width_ || first.height() != height_)
    spdlog::debug("{}: frames are {}x{}, expected {}x{}", final_.string(), first.width(),
                  first.height(), width_, height_);
  ctx->width = first.width();
  ctx->height = first.height();
  ctx->pix_fmt = encoder_pixel_format(codec_, first.data_format(), in_.stream_pixel_format);
  ctx->time_base = valid(in_.time_base) ? in_.time_base : AVRational{1, 90000};
  if (valid(in_.avg_frame_rate)) ctx->framerate = in_.avg_frame_rate;
  ctx->sample_aspect_ratio =
      valid(in_.sample_aspect_ratio) ? in_.sample_aspect_ratio : f->sample_aspect_ratio;
  ctx->color_primaries =
      f->color_primaries != AVCOL_PRI_UNSPECIFIED ? f->color_primaries : in_.color_primaries;
  ctx->color_trc = f->color_trc != AVCOL_TRC_UNSPECIFIED ? f->color_trc : in_.color_trc;
  ctx->colorspace = f->colorspace != AVCOL_SPC_UNSPECIFIED ? f->colorspace : in_.colorspace;
  ctx->color_range = f->color_range != AVCOL_RANGE_UNSPECIFIED ? f->color_range : in_.color_range;
  ctx->chroma_sample_location =
      f->chroma_location != AVCHROMA_LOC_UNSPECIFIED ? f->chroma_location : in_.chroma_location;
  if (first.data_format() != ctx->pix_fmt) {
    // The converter writes RGB sources as BT.601 limited-range YUV.
    const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(first.data_format());
    if (desc && (desc->flags & AV_PIX_FMT_FLAG_RGB)) {
      ctx->colorspace = AVCOL_SPC_BT470BG;
      ctx->color_range = AVCOL_RANGE_MPEG;
    }
  }
  ctx->thread_count = options_.threads;
  if (format_->flags & AVFMT_GLOBALHEADER) ctx->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;

  AVDictionary* opts = nullptr;
  const std::string crf = std::to_string(options_.crf);
  if (encoder_name_ == "libx264" || encoder_name_ == "libsvtav1") {
    av_dict_set(&opts, "crf", crf.c_str(), 0);
  } else if (encoder_name_ == "libvpx-vp9" || encoder_name_ == "libaom-av1") {
    // Constant quality (b:v 0 lifts the default bitrate cap); row threads; a speed preset
    // near each library's real-time end (upscaled content, not archival masters).
    av_dict_set(&opts, "crf", crf.c_str(), 0);
    av_dict_set(&opts, "b", "0", 0);
    av_dict_set(&opts, "row-mt", "1", 0);
    av_dict_set(&opts, "cpu-used", encoder_name_ == "libvpx-vp9" ? "4" : "6", 0);
    if (encoder_name_ == "libvpx-vp9") av_dict_set(&opts, "deadline", "good", 0);
  } else if (encoder_name_ == "libx265") {
    av_dict_set(&opts, "crf", crf.c_str(), 0);
    av_dict_set(&opts, "x265-params", ("log-level=error:" + x265_hdr_params(f)).c_str(), 0);
  } else if (encoder_name_ == "h264_nvenc" || encoder_name_ == "hevc_nvenc") {
    av_dict_set(&opts, "cq", crf.c_str(), 0);
    if (encoder_name_ == "hevc_nvenc" && pixel_format_bit_depth(ctx->pix_fmt) > 8)
      av_dict_set(&opts, "profile", "main10", 0);
  } else if (encoder_name_ == "ffv1") {
    // Version 3 allows slice threads and checksums each slice.
    av_dict_set(&opts, "level", "3", 0);
    av_dict_set(&opts, "slicecrc", "1", 0);
  }
  int err = avcodec_open2(ctx, codec_, &opts);
  av_dict_free(&opts);
  if (err < 0) fail("cannot open the encoder " + encoder_name_ + ": " + av_error_string(err));
  notes_.front() = "encoder " + encoder_name_ + " (" + av_get_pix_fmt_name(ctx->pix_fmt) + ")";

  if (mode_ == SinkMode::kSegment) {
    write_segment_header(f);
    return;
  }
  CodecParametersPtr par(avcodec_parameters_alloc());
  if (!par || avcodec_parameters_from_context(par.get(), ctx) < 0)
    fail("cannot set up the video stream");
  set_up_video_stream(par.get(), ctx->time_base, hdr_side_data(f));
}

void VideoSink::set_up_video_stream(const AVCodecParameters* par, AVRational time_base,
                                    const std::vector<StreamSideData>& side_data) {
  AVStream* st = video_stream_;
  if (avcodec_parameters_copy(st->codecpar, par) < 0) fail("cannot set up the video stream");
  st->codecpar->codec_tag = 0;
  st->time_base = time_base;
  st->avg_frame_rate = in_.avg_frame_rate;
  st->sample_aspect_ratio = par->sample_aspect_ratio;
  const std::string container = out_->oformat->name;
  if (par->codec_id == AV_CODEC_ID_HEVC && (container == "mp4" || container == "mov"))
    st->codecpar->codec_tag = MKTAG('h', 'v', 'c', '1');  // plays on Apple devices
  for (const StreamSideData& sd : side_data) {
    uint8_t* dst = av_stream_new_side_data(st, AVPacketSideDataType(sd.type), sd.bytes.size());
    if (dst) std::copy(sd.bytes.begin(), sd.bytes.end(), dst);
  }
  if (copy_input_ && in_.stream_index >= 0 &&
      in_.stream_index < static_cast<int>(copy_input_->nb_streams)) {
    const AVStream* from = copy_input_->streams[in_.stream_index];
    copy_metadata(&st->metadata, from->metadata);
    // Rotation applies to the upscaled frames as it did to the input.
    size_t size = 0;
    if (const uint8_t* matrix = av_stream_get_side_data(from, AV_PKT_DATA_DISPLAYMATRIX, &size)) {
      uint8_t* dst = av_stream_new_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, size);
      if (dst) std::copy(matrix, matrix + size, dst);
    }
  }
  int err = avformat_write_header(out_, nullptr);
  if (err < 0) fail("cannot write the file header: " + av_error_string(err));
}

void VideoSink::write_segment_header(const AVFrame* first) {
  SegmentHeader h;
  if (!h.par || avcodec_parameters_from_context(h.par, encoder_.get()) < 0)
    fail("cannot describe the video stream");
  h.time_base = encoder_->time_base;
  SegmentWriter w(segment_file_);
  w.bytes(kSegmentMagic, sizeof kSegmentMagic);
  std::vector<int64_t> fields = segment_fields(h);
  w.i64(int64_t(fields.size()));
  for (int64_t v : fields) w.i64(v);
  w.blob(h.par->extradata, size_t(h.par->extradata_size));
  std::vector<StreamSideData> side_data = hdr_side_data(first);
  w.i64(int64_t(side_data.size()));
  for (const StreamSideData& sd : side_data) {
    w.i64(sd.type);
    w.blob(sd.bytes.data(), sd.bytes.size());
  }
  if (!w.ok()) fail(std::string("cannot write: ") + std::strerror(errno));
}

void VideoSink::write_segment_packet(const AVPacket* packet) {
  SegmentWriter w(segment_file_);
  w.i64(packet->pts);
  w.i64(packet->dts);
  w.i64(packet->duration);
  w.i64(packet->flags);
  w.blob(packet->data, size_t(packet->size));
  if (!w.ok()) fail(std::string("cannot write: ") + std::strerror(errno));
}

void VideoSink::append_segment(const fs::path& segment) {
  FilePtr file(std::fopen(segment.c_str(), "rb"));
  if (!file)
    throw Error(segment.string(), std::string("cannot read the segment: ") + std::strerror(errno),
                ExitCode::kProcessingFailed, "save");
  SegmentReader r(file.get(), segment.string());
  char magic[sizeof kSegmentMagic];
  r.bytes(magic, sizeof magic);
  if (!std::equal(magic, magic + sizeof magic, kSegmentMagic))
    throw Error(segment.string(), "not an upframe segment file", ExitCode::kProcessingFailed,
                "save");
  SegmentHeader h;
  std::vector<int64_t> fields(size_t(std::clamp<int64_t>(r.i64(), 0, 256)));
  for (int64_t& v : fields) v = r.i64();
  if (fields.size() != segment_fields(h).size())
    throw Error(segment.string(), "segment file of another version", ExitCode::kProcessingFailed,
                "save");
  set_segment_fields(h, fields);
  std::string extradata = r.blob(1 << 24);
  for (int64_t n = r.i64(); n > 0; --n) {
    int64_t type = r.i64();
    h.side_data.push_back({type, r.blob(1 << 20)});
  }
  if (joined_fields_.empty()) {
    if (!extradata.empty()) {
      h.par->extradata =
          static_cast<uint8_t*>(av_mallocz(extradata.size() + AV_INPUT_BUFFER_PADDING_SIZE));
      if (!h.par->extradata) fail("out of memory");
      std::copy(extradata.begin(), extradata.end(), h.par->extradata);
      h.par->extradata_size = int(extradata.size());
    }
    set_up_video_stream(h.par, h.time_base, h.side_data);
    joined_fields_ = fields;
    joined_extradata_ = extradata;
    notes_.front() = std::string("encoder ") + encoder_name_ + " (" +
                     av_get_pix_fmt_name(AVPixelFormat(h.par->format)) + ")";
  } else if (fields != joined_fields_ || extradata != joined_extradata_) {
    // Each segment's encoder was set up alike; a difference would make an unplayable stream.
    throw Error(segment.string(), "segment encoded differently from the first one",
                ExitCode::kProcessingFailed, "save");
  }
  for (;;) {
    int64_t pts = r.i64(), dts = r.i64(), duration = r.i64(), flags = r.i64();
    int64_t size = r.i64();
    if (size == -1) break;  // end record: the segment is whole
    if (size < 0 || size > (int64_t(1) << 30))
      throw Error(segment.string(), "segment file is corrupt", ExitCode::kProcessingFailed, "save");
    if (av_new_packet(packet_.get(), int(size)) < 0) fail("out of memory");
    r.bytes(packet_->data, size_t(size));
    packet_->pts = pts;
    packet_->dts = dts;
    packet_->duration = duration;
    packet_->flags = int(flags);
    av_packet_rescale_ts(packet_.get(), h.time_base, video_stream_->time_base);
    packet_->stream_index = video_stream_->index;
    if (packet_->dts != AV_NOPTS_VALUE && last_joined_dts_ != AV_NOPTS_VALUE &&
        packet_->dts <= last_joined_dts_)
      throw Error(segment.string(),
                  "segment's timestamps overlap the previous segment's (dts " +
                      std::to_string(packet_->dts) + " after " + std::to_string(last_joined_dts_) +
                      ")",
                  ExitCode::kProcessingFailed, "save");
    if (packet_->dts != AV_NOPTS_VALUE) last_joined_dts_ = packet_->dts;
    int64_t ts = packet_->dts != AV_NOPTS_VALUE ? packet_->dts : packet_->pts;
    if (ts != AV_NOPTS_VALUE) copy_until(ts, video_stream_->time_base);
    int err = av_interleaved_write_frame(out_, packet_.get());
    if (err < 0) fail("cannot write: " + av_error_string(err));
  }
}

void VideoSink::encode(int64_t index, const Frame& frame, int64_t pts) {
  if (finished_ || mode_ == SinkMode::kJoin) fail("write after finish", index);
  if (!frame) fail("internal: no upscaled pixels for this frame", index);
  if (!encoder_) open_encoder(frame.to_host());
  if (frame.width() != encoder_->width || frame.height() != encoder_->height)
    fail("frame size changed from " + std::to_string(encoder_->width) + "x" +
             std::to_string(encoder_->height) + " to " + std::to_string(frame.width()) + "x" +
             std::to_string(frame.height()),
         index);
  Frame converted = converter_.convert(frame, encoder_->pix_fmt).ref();
  AVFrame* f = converted.av();
  if (last_pts_ != AV_NOPTS_VALUE && pts <= last_pts_) pts = last_pts_ + 1;
  last_pts_ = pts;
  f->pts = pts;
  f->pict_type = AV_PICTURE_TYPE_NONE;
  f->sample_aspect_ratio = encoder_->sample_aspect_ratio;
  int err = avcodec_send_frame(encoder_.get(), f);
  if (err < 0) fail("cannot encode: " + av_error_string(err), index);
  drain(index);
}

void VideoSink::drain(int64_t index) {
  for (;;) {
    int err = avcodec_receive_packet(encoder_.get(), packet_.get());
    if (err == AVERROR(EAGAIN) || err == AVERROR_EOF) return;
    if (err < 0) fail("cannot encode: " + av_error_string(err), index);
    if (mode_ == SinkMode::kSegment) {
      write_segment_packet(packet_.get());
      av_packet_unref(packet_.get());
      continue;
    }
    av_packet_rescale_ts(packet_.get(), encoder_->time_base, video_stream_->time_base);
    packet_->stream_index = video_stream_->index;
    int64_t ts = packet_->dts != AV_NOPTS_VALUE ? packet_->dts : packet_->pts;
    if (ts != AV_NOPTS_VALUE) copy_until(ts, video_stream_->time_base);
    err = av_interleaved_write_frame(out_, packet_.get());
    if (err < 0) fail("cannot write: " + av_error_string(err), index);
  }
}

void VideoSink::copy_until(int64_t ts, AVRational time_base) {
  while (!copy_done_) {
    if (!copy_pending_) {
      int err = av_read_frame(copy_input_.get(), copy_packet_.get());
      if (err < 0) {
        if (err != AVERROR_EOF)
          spdlog::warn("{}: stopped copying the other streams: {}", in_.path, av_error_string(err));
        copy_done_ = true;
        for (auto& [index, transcoder] : transcoders_) transcode(index, nullptr);
        return;
      }
      if (copy_packet_->stream_index >= static_cast<int>(copy_map_.size()) ||
          copy_map_[copy_packet_->stream_index] < 0) {
        av_packet_unref(copy_packet_.get());
        continue;
      }
      copy_pending_ = true;
    }
    AVPacket* pkt = copy_packet_.get();
    const AVStream* from = copy_input_->streams[pkt->stream_index];
    int64_t pkt_ts = pkt->dts != AV_NOPTS_VALUE ? pkt->dts : pkt->pts;
    if (pkt_ts != AV_NOPTS_VALUE && ts != INT64_MAX &&
        av_compare_ts(pkt_ts, from->time_base, ts, time_base) > 0)
      return;  // later than the video written so far: keep it for later
    if (transcoders_.count(pkt->stream_index)) {
      copy_pending_ = false;
      transcode(pkt->stream_index, pkt);
      av_packet_unref(pkt);
      continue;
    }
    AVStream* to = out_->streams[copy_map_[pkt->stream_index]];
    pkt->stream_index = to->index;
    av_packet_rescale_ts(pkt, from->time_base, to->time_base);
    pkt->pos = -1;
    copy_pending_ = false;
    int err = av_interleaved_write_frame(out_, pkt);
    if (err < 0) fail("cannot write a copied packet: " + av_error_string(err));
  }
}

void VideoSink::transcode(int input_index, const AVPacket* packet) {
  AudioTranscoder& transcoder = *transcoders_.at(input_index);
  AVStream* to = out_->streams[copy_map_[input_index]];
  transcoder.send(packet, [&](AVPacket* out) {
    av_packet_rescale_ts(out, transcoder.encoder()->time_base, to->time_base);
    out->stream_index = to->index;
    int err = av_interleaved_write_frame(out_, out);
    if (err < 0) fail("cannot write a re-encoded audio packet: " + av_error_string(err));
  });
}

void VideoSink::finish() {
  if (finished_) return;
  int err = 0;
  if (mode_ == SinkMode::kJoin) {
    if (joined_fields_.empty()) fail("no segments to join");
  } else {
    if (!encoder_) fail("no frames were written");
    err = avcodec_send_frame(encoder_.get(), nullptr);
    if (err < 0 && err != AVERROR_EOF) fail("cannot flush the encoder: " + av_error_string(err));
    drain(-1);
  }
  if (mode_ == SinkMode::kSegment) {
    finish_segment();
    return;
  }
  copy_until(INT64_MAX, AVRational{1, 1});
  err = av_write_trailer(out_);
  if (err < 0) fail("cannot finish the file: " + av_error_string(err));
  if (!(out_->oformat->flags & AVFMT_NOFILE)) {
    err = avio_closep(&out_->pb);
    if (err < 0) fail("cannot write: " + av_error_string(err));
  }
  close_output();
  std::error_code ec;
  fs::rename(temporary_, final_, ec);
  if (ec) fail("cannot move the finished file into place: " + ec.message());
  finished_ = true;
}

// The end record, then the file synced to disk before the rename: a segment named in the
// manifest survives a crash whole.
void VideoSink::finish_segment() {
  SegmentWriter w(segment_file_);
  w.i64(0);
  w.i64(0);
  w.i64(0);
  w.i64(0);
  w.i64(-1);
  bool ok = w.ok() && std::fflush(segment_file_) == 0 && fsync(fileno(segment_file_)) == 0;
  ok = std::fclose(segment_file_) == 0 && ok;
  segment_file_ = nullptr;
  encoder_.reset();
  if (!ok) fail(std::string("cannot write: ") + std::strerror(errno));
  std::error_code ec;
  fs::rename(temporary_, final_, ec);
  if (ec) fail("cannot move the finished segment into place: " + ec.message());
  finished_ = true;
}

void VideoSink::close_output() noexcept {
  if (segment_file_) {
    std::fclose(segment_file_);
    segment_file_ = nullptr;
  }
  encoder_.reset();
  if (!out_) return;
  if (out_->pb && !(out_->oformat->flags & AVFMT_NOFILE)) avio_closep(&out_->pb);
  avformat_free_context(out_);
  out_ = nullptr;
  encoder_.reset();
  transcoders_.clear();
  copy_input_.reset();
}

void VideoSink::abort() noexcept {
  close_output();
  std::error_code ec;
  fs::remove(temporary_, ec);
  finished_ = true;
}

}  // namespace

NvencStatus nvenc_status(const std::string& encoder) {
  static std::mutex mutex;
  static std::map<std::string, NvencStatus> probed;
  std::lock_guard lock(mutex);
  if (auto it = probed.find(encoder); it != probed.end()) return it->second;
  NvencStatus status;
  const CudaDeviceInfo gpu = cuda_device_info();
  status.device_present = gpu.available;
  const AVCodec* codec = avcodec_find_encoder_by_name(encoder.c_str());
  if (!gpu.available) {  // no device, or no CUDA support built
    status.reason = gpu.reason;
  } else if (!codec) {
    status.reason = "this FFmpeg has no " + encoder;
  } else {
    // The only sure test: open a session (an H100, for one, has no NVENC unit).
    CodecContextPtr ctx(avcodec_alloc_context3(codec));
    if (!ctx) throw Error({}, "out of memory probing " + encoder);
    ctx->width = 256;
    ctx->height = 256;
    ctx->time_base = AVRational{1, 25};
    ctx->pix_fmt = encoder == "hevc_nvenc" ? AV_PIX_FMT_P010LE : AV_PIX_FMT_YUV420P;
    int err = avcodec_open2(ctx.get(), codec, nullptr);
    status.usable = err >= 0;
    if (!status.usable)
      status.reason = gpu.name + " cannot open " + encoder + ": " + av_error_string(err);
  }
  probed[encoder] = status;
  return status;
}

std::string resolve_encoder(const std::string& requested, int bit_depth, const fs::path& output) {
  std::string name = requested;
  const AVOutputFormat* format =
      output.empty() ? nullptr : av_guess_format(nullptr, output.c_str(), nullptr);
  if ((name.empty() || name == "auto") && format && std::string(format->name) == "webm") {
    // WebM holds VP8/VP9/AV1 only: VP9 (profile 2 above 8 bits), the widely decoded one.
    name = "libvpx-vp9";
  } else if (name.empty() || name == "auto") {
    // SPEC section 8: NVENC where the card has it, else the CPU encoders.
    const std::string nvenc = bit_depth > 8 ? "hevc_nvenc" : "h264_nvenc";
    const std::string cpu = bit_depth > 8 ? "libx265" : "libx264";
    const NvencStatus status = nvenc_status(nvenc);
    name = status.usable ? nvenc : cpu;
    static std::once_flag logged;
    if (!status.usable && status.device_present)
      std::call_once(logged, [&] {
        spdlog::info("GPU encode unavailable ({}), using {}", status.reason, cpu);
      });
  }
  if (std::find(kKnownEncoders.begin(), kKnownEncoders.end(), name) == kKnownEncoders.end())
    throw UsageError({}, "unknown encoder '" + name + "' (" + kKnownEncoderList + ")");
  if (!avcodec_find_encoder_by_name(name.c_str()))
    throw UsageError({}, "the encoder " + name + " is not available in this FFmpeg build");
  return name;
}

std::string container_refusal(const fs::path& output, const std::string& encoder) {
  const AVOutputFormat* format = av_guess_format(nullptr, output.c_str(), nullptr);
  const AVCodec* codec = avcodec_find_encoder_by_name(encoder.c_str());
  if (!format) return "no container for the extension '" + output.extension().string() + "'";
  std::string problem = std::string("the ") + format->name + " container cannot hold " +
                        (codec ? avcodec_get_name(codec->id) : encoder.c_str()) +
                        " video (encoder " + encoder + "); ";
  if (std::string(format->name) == "webm")
    return problem + "use --encoder libvpx-vp9, libaom-av1 or libsvtav1, or .mkv";
  return problem + "use .mkv";
}

std::string alpha_note(AVPixelFormat source, const std::string& encoder) {
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(source);
  const AVCodec* codec = avcodec_find_encoder_by_name(encoder.c_str());
  if (!desc || !codec || !(desc->flags & AV_PIX_FMT_FLAG_ALPHA)) return {};
  const AVPixFmtDescriptor* chosen = av_pix_fmt_desc_get(encoder_pixel_format(codec, source));
  if (chosen && (chosen->flags & AV_PIX_FMT_FLAG_ALPHA)) return {};
  return "alpha channel dropped: " + encoder + " video cannot hold it";
}

bool container_accepts_encoder(const fs::path& output, const std::string& encoder) {
  const AVOutputFormat* format = av_guess_format(nullptr, output.c_str(), nullptr);
  const AVCodec* codec = avcodec_find_encoder_by_name(encoder.c_str());
  return format && codec && avformat_query_codec(format, codec->id, FF_COMPLIANCE_NORMAL) != 0;
}

std::unique_ptr<FrameSink> make_video_sink(const fs::path& output, const VideoInfo& in, int width,
                                           int height, const VideoSinkOptions& options) {
  return std::make_unique<VideoSink>(SinkMode::kDirect, output, output, in, width, height, options);
}

std::unique_ptr<FrameSink> make_video_segment_sink(const fs::path& segment,
                                                   const fs::path& container, const VideoInfo& in,
                                                   int width, int height,
                                                   const VideoSinkOptions& options) {
  return std::make_unique<VideoSink>(SinkMode::kSegment, segment, container, in, width, height,
                                     options);
}

std::vector<std::string> join_video_segments(const fs::path& output,
                                             const std::vector<fs::path>& segments,
                                             const VideoInfo& in, const VideoSinkOptions& options) {
  VideoSink sink(SinkMode::kJoin, output, output, in, 0, 0, options);
  for (const fs::path& segment : segments) sink.append_segment(segment);
  sink.finish();
  return sink.notes();
}

}  // namespace upframe
