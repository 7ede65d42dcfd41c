// Animated image output: GIF, APNG and animated WebP.
//
// All three store each frame's own duration, so frames keep their input timestamps and the
// last one its own duration (FrameSink::set_duration). They are written in one pass under a
// temporary name and renamed by finish(), never as resumable segments: a GIF has one palette
// for the whole clip and an animated WebP is one RIFF chunk tree written at the end, so a part
// of one cannot be joined to another without decoding it again.
//
// - GIF: one palette per clip, as FFmpeg's palettegen/paletteuse make it (libavfilter). Frames
//   are fed to palettegen as they come and spooled, raw, to a temporary file beside the output
//   (memory stays bounded); finish() maps the spooled frames on the palette (paletteuse,
//   default dithering) and encodes them. GIF transparency is one bit: alpha below 128 becomes
//   the transparent colour. Delays are centiseconds; timestamps are rounded on that grid
//   (absolute times, so the total duration is kept within 10 ms).
// - APNG: libavcodec's apng encoder and muxer, rgba (rgb24 without alpha; 16-bit for deeper
//   sources), looping forever like a GIF.
// - WebP: each frame encoded whole by libwebp (lossless at --quality 100, else lossy with that
//   quality; alpha kept) and assembled with WebPMux, every frame with its own duration in ms
//   (absolute times rounded, so the total is kept). Not FFmpeg's libwebp_anim nor libwebp's
//   WebPAnimEncoder: both fold a frame identical to the one before it (a duplicate) into a
//   longer previous frame, so the file would hold fewer frames than the clip.
#include <spdlog/spdlog.h>
#include <webp/encode.h>
#include <webp/mux.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "media/libav_helpers.hpp"
#include "upframe/error.hpp"
#include "upframe/media/frame_sink.hpp"

extern "C" {
#include <libavfilter/avfilter.h>
#include <libavfilter/buffersink.h>
#include <libavfilter/buffersrc.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
}

namespace upframe {

using namespace media;
namespace fs = std::filesystem;

namespace {

bool valid(AVRational r) { return r.num > 0 && r.den > 0; }

bool has_alpha(AVPixelFormat format) {
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(format);
  return desc && (desc->flags & (AV_PIX_FMT_FLAG_ALPHA | AV_PIX_FMT_FLAG_PAL));
}

// Whether `path` has an audio stream (an animation output has no place for it).
bool has_audio(const fs::path& path) {
  if (path.empty()) return false;
  try {
    const InputContextPtr input = open_input(path);
    for (unsigned i = 0; i < input->nb_streams; ++i)
      if (input->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_AUDIO) return true;
  } catch (const Error&) {
    // The decoder opened it already; a second open failing changes nothing it reported.
  }
  return false;
}

struct GraphFreer {
  void operator()(AVFilterGraph* g) const { avfilter_graph_free(&g); }
};
using GraphPtr = std::unique_ptr<AVFilterGraph, GraphFreer>;

// A libavfilter graph of one chain: buffer source(s) -> filter -> buffer sink.
class FilterChain {
 public:
  // `sources`: the buffer sources' arguments ("video_size=...:pix_fmt=...:time_base=..."),
  // linked to the filter's inputs in order.
  FilterChain(const std::string& file, const std::vector<std::string>& sources,
              const char* filter_name, const std::string& filter_args)
      : file_(file), graph_(avfilter_graph_alloc()) {
    if (!graph_) fail("out of memory");
    AVFilterContext* filter = nullptr;
    check(avfilter_graph_create_filter(&filter, avfilter_get_by_name(filter_name), filter_name,
                                       filter_args.c_str(), nullptr, graph_.get()),
          filter_name);
    for (size_t i = 0; i < sources.size(); ++i) {
      AVFilterContext* src = nullptr;
      const std::string name = "in" + std::to_string(i);
      check(avfilter_graph_create_filter(&src, avfilter_get_by_name("buffer"), name.c_str(),
                                         sources[i].c_str(), nullptr, graph_.get()),
            "buffer");
      check(avfilter_link(src, 0, filter, unsigned(i)), "link");
      sources_.push_back(src);
    }
    check(avfilter_graph_create_filter(&sink_, avfilter_get_by_name("buffersink"), "out", nullptr,
                                       nullptr, graph_.get()),
          "buffersink");
    check(avfilter_link(filter, 0, sink_, 0), "link");
    check(avfilter_graph_config(graph_.get(), nullptr), "configure");
  }
  // `frame` null: the end of that input.
  void push(size_t input, AVFrame* frame) {
    check(av_buffersrc_add_frame_flags(sources_[input], frame, AV_BUFFERSRC_FLAG_KEEP_REF), "feed");
  }
  // The next output frame, or an empty Frame when the graph needs more input or has ended.
  Frame pull() {
    AVFrame* raw = av_frame_alloc();
    if (!raw) fail("out of memory");
    Frame frame = Frame::adopt(raw);
    int err = av_buffersink_get_frame(sink_, raw);
    if (err == AVERROR(EAGAIN) || err == AVERROR_EOF) return {};
    check(err, "filter");
    return frame;
  }

 private:
  void check(int err, const std::string& what) const {
    if (err < 0) fail("libavfilter (" + what + "): " + av_error_string(err));
  }
  [[noreturn]] void fail(const std::string& problem) const {
    throw Error(file_, "GIF palette: " + problem, ExitCode::kProcessingFailed, "save");
  }
  std::string file_;
  GraphPtr graph_;
  std::vector<AVFilterContext*> sources_;
  AVFilterContext* sink_ = nullptr;
};

std::string buffer_args(int width, int height, AVPixelFormat format, AVRational time_base) {
  return "video_size=" + std::to_string(width) + "x" + std::to_string(height) +
         ":pix_fmt=" + av_get_pix_fmt_name(format) + ":time_base=" + std::to_string(time_base.num) +
         "/" + std::to_string(time_base.den) + ":pixel_aspect=1/1";
}

class AnimationSink final : public FrameSink {
 public:
  AnimationSink(const fs::path& output, const VideoInfo& in, const AnimationOptions& options)
      : final_(output), temporary_(temporary_sibling(output)), in_(in), options_(options) {
    std::error_code ec;
    if (fs::exists(final_, ec)) {
      if (!options_.overwrite) fail("the output already exists (use -y to overwrite)");
      if (!in_.path.empty() && fs::equivalent(final_, in_.path, ec))
        fail("the output is the input file");
    }
    if (options_.format != "gif" && options_.format != "apng" && options_.format != "webp")
      throw UsageError(final_.string(), "unknown animation format '" + options_.format + "'");
    time_base_ = valid(in_.time_base) ? in_.time_base : AVRational{1, 1000};
    notes_.push_back("animated " + options_.format + " output");
    if (has_audio(in_.path)) {
      notes_.push_back("audio dropped: an animated " + options_.format + " has no audio");
      spdlog::warn("{}: {}", final_.string(), notes_.back());
    }
  }
  ~AnimationSink() override {
    if (!finished_) abort();
  }

  void set_duration(int64_t, int64_t duration) override { next_duration_ = duration; }
  void write_unique(int64_t index, const Frame& frame, int64_t pts) override {
    write(index, frame, pts);
  }
  void write_duplicate(int64_t index, int64_t, const Frame& frame, int64_t pts) override {
    write(index, frame, pts);
  }
  void finish() override;
  void abort() noexcept override;
  std::vector<std::string> notes() const override { return notes_; }

 private:
  [[noreturn]] void fail(const std::string& problem, int64_t index = -1) const {
    throw Error(final_.string(), problem, ExitCode::kProcessingFailed, "save", index);
  }
  void write(int64_t index, const Frame& frame, int64_t pts);
  void start(const Frame& first);
  void open_muxer(const AVCodecContext* encoder);
  void encode(AVFrame* frame, int64_t index);
  void add_webp(const Frame& frame, int64_t index);
  void push_webp(int64_t end_ms);
  void finish_webp();
  int64_t to_ms(int64_t pts) const { return av_rescale_q(pts, time_base_, AVRational{1, 1000}); }

  fs::path final_;
  fs::path temporary_;
  fs::path spool_path_;
  VideoInfo in_;
  AnimationOptions options_;
  AVRational time_base_;
  int width_ = 0;
  int height_ = 0;
  AVPixelFormat frame_format_ = AV_PIX_FMT_NONE;  // what frames are converted to
  PixelConverter converter_;
  int64_t last_pts_ = AV_NOPTS_VALUE;
  int64_t next_duration_ = 0;
  int64_t last_duration_ = 0;
  int64_t frames_ = 0;
  // GIF
  std::unique_ptr<FilterChain> palettegen_;
  FILE* spool_ = nullptr;
  std::vector<int64_t> spooled_pts_;
  // GIF and APNG
  CodecContextPtr encoder_;
  AVFormatContext* out_ = nullptr;
  PacketPtr packet_ = make_packet();
  // WebP: the animation so far, and the last frame, pushed once its duration is known.
  WebPMux* webp_ = nullptr;
  WebPConfig webp_config_{};
  std::string webp_pending_;
  int64_t webp_pending_ms_ = 0;
  bool finished_ = false;
  std::vector<std::string> notes_;
};

void AnimationSink::start(const Frame& first) {
  width_ = first.width();
  height_ = first.height();
  const AVPixelFormat source = first.data_format();
  const bool alpha = has_alpha(source);
  const bool deep = pixel_format_bit_depth(source) > 8;
  if (options_.format == "apng") {
    frame_format_ = alpha ? (deep ? AV_PIX_FMT_RGBA64BE : AV_PIX_FMT_RGBA)
                          : (deep ? AV_PIX_FMT_RGB48BE : AV_PIX_FMT_RGB24);
    const AVCodec* codec = avcodec_find_encoder_by_name("apng");
    if (!codec) fail("this FFmpeg has no apng encoder");
    encoder_.reset(avcodec_alloc_context3(codec));
    if (!encoder_) fail("out of memory");
    encoder_->width = width_;
    encoder_->height = height_;
    encoder_->pix_fmt = frame_format_;
    encoder_->time_base = time_base_;
    encoder_->sample_aspect_ratio = AVRational{1, 1};
    int err = avcodec_open2(encoder_.get(), codec, nullptr);
    if (err < 0) fail("cannot open the apng encoder: " + av_error_string(err));
    open_muxer(encoder_.get());
  } else if (options_.format == "gif") {
    frame_format_ = AV_PIX_FMT_BGRA;
    palettegen_ = std::make_unique<FilterChain>(
        final_.string(),
        std::vector<std::string>{buffer_args(width_, height_, frame_format_, time_base_)},
        "palettegen", "max_colors=256:reserve_transparent=1:stats_mode=full");
    spool_path_ = temporary_;
    spool_path_ += ".frames";
    spool_ = std::fopen(spool_path_.c_str(), "w+b");
    if (!spool_)
      fail("cannot write in " + final_.parent_path().string() + ": " + std::strerror(errno));
  } else {
    frame_format_ = AV_PIX_FMT_RGBA;
    if (!WebPConfigInit(&webp_config_)) fail("libwebp version mismatch");
    webp_config_.lossless = options_.quality >= 100;
    webp_config_.quality = float(options_.quality >= 100 ? 75 : options_.quality);
    webp_config_.exact = 1;  // keep the colour under transparent pixels
    webp_ = WebPMuxNew();
    if (!webp_) fail("out of memory");
  }
  if (deep && options_.format != "apng") {
    notes_.push_back("reduced to 8 bits: an animated " + options_.format + " holds 8-bit colour");
    spdlog::warn("{}: {}", final_.string(), notes_.back());
  }
  notes_.front() = "animated " + options_.format + " output (" +
                   av_get_pix_fmt_name(options_.format == "gif" ? AV_PIX_FMT_PAL8 : frame_format_) +
                   (alpha ? ", alpha kept" : "") + ")";
}

void AnimationSink::open_muxer(const AVCodecContext* encoder) {
  const char* muxer = options_.format == "gif" ? "gif" : "apng";
  int err = avformat_alloc_output_context2(&out_, av_guess_format(muxer, nullptr, nullptr), nullptr,
                                           temporary_.c_str());
  if (err < 0 || !out_) fail("cannot set up the output: " + av_error_string(err));
  AVStream* st = avformat_new_stream(out_, nullptr);
  if (!st || avcodec_parameters_from_context(st->codecpar, encoder) < 0)
    fail("cannot set up the stream");
  st->time_base = encoder->time_base;
  err = avio_open(&out_->pb, temporary_.c_str(), AVIO_FLAG_WRITE);
  if (err < 0) {
    avformat_free_context(out_);
    out_ = nullptr;
    fail("cannot write in " + final_.parent_path().string() + ": " + av_error_string(err));
  }
  AVDictionary* opts = nullptr;
  if (options_.format == "apng") av_dict_set(&opts, "plays", "0", 0);  // loop, like a GIF
  err = avformat_write_header(out_, &opts);
  av_dict_free(&opts);
  if (err < 0) fail("cannot write the file header: " + av_error_string(err));
}

void AnimationSink::write(int64_t index, const Frame& frame, int64_t pts) {
  if (finished_) fail("write after finish", index);
  if (!frame) fail("internal: no upscaled pixels for this frame", index);
  if (!encoder_ && !palettegen_ && !webp_) start(frame.to_host());
  if (frame.width() != width_ || frame.height() != height_)
    fail("frame size changed from " + std::to_string(width_) + "x" + std::to_string(height_) +
             " to " + std::to_string(frame.width()) + "x" + std::to_string(frame.height()),
         index);
  if (last_pts_ != AV_NOPTS_VALUE && pts <= last_pts_) pts = last_pts_ + 1;
  last_pts_ = pts;
  last_duration_ = next_duration_ > 0 ? next_duration_ : last_duration_;
  next_duration_ = 0;
  ++frames_;
  Frame converted = converter_.convert(frame, frame_format_).ref();
  converted.av()->pts = pts;
  if (options_.format == "webp") return add_webp(converted, index);
  if (options_.format == "apng") return encode(converted.av(), index);
  // GIF: into the palette statistics, and spooled for the second pass.
  palettegen_->push(0, converted.av());
  while (palettegen_->pull()) {
  }
  const AVFrame* f = converted.av();
  for (int y = 0; y < height_; ++y)
    if (std::fwrite(f->data[0] + size_t(y) * f->linesize[0], 1, size_t(width_) * 4, spool_) !=
        size_t(width_) * 4)
      fail(std::string("cannot write the frames' spool file: ") + std::strerror(errno), index);
  spooled_pts_.push_back(pts);
}

void AnimationSink::encode(AVFrame* frame, int64_t index) {
  int err = avcodec_send_frame(encoder_.get(), frame);
  if (err < 0 && !(frame == nullptr && err == AVERROR_EOF))
    fail("cannot encode: " + av_error_string(err), index);
  AVStream* st = out_->streams[0];
  for (;;) {
    err = avcodec_receive_packet(encoder_.get(), packet_.get());
    if (err == AVERROR(EAGAIN) || err == AVERROR_EOF) return;
    if (err < 0) fail("cannot encode: " + av_error_string(err), index);
    av_packet_rescale_ts(packet_.get(), encoder_->time_base, st->time_base);
    packet_->stream_index = 0;
    err = av_interleaved_write_frame(out_, packet_.get());
    if (err < 0) fail("cannot write: " + av_error_string(err), index);
  }
}

void AnimationSink::push_webp(int64_t end_ms) {
  if (webp_pending_.empty()) return;
  WebPMuxFrameInfo info{};
  info.bitstream.bytes = reinterpret_cast<const uint8_t*>(webp_pending_.data());
  info.bitstream.size = webp_pending_.size();
  info.id = WEBP_CHUNK_ANMF;
  info.duration = int(std::clamp<int64_t>(end_ms - webp_pending_ms_, 1, (1 << 24) - 1));
  info.dispose_method = WEBP_MUX_DISPOSE_NONE;
  info.blend_method = WEBP_MUX_NO_BLEND;  // each frame replaces the canvas, alpha included
  if (WebPMuxPushFrame(webp_, &info, 1) != WEBP_MUX_OK) fail("libwebp cannot add a frame");
  webp_pending_.clear();
}

void AnimationSink::add_webp(const Frame& frame, int64_t index) {
  const AVFrame* f = frame.av();
  const int64_t ms = to_ms(f->pts);
  push_webp(ms);
  WebPPicture picture;
  if (!WebPPictureInit(&picture)) fail("libwebp version mismatch");
  picture.use_argb = 1;
  picture.width = width_;
  picture.height = height_;
  WebPMemoryWriter writer;
  WebPMemoryWriterInit(&writer);
  picture.writer = WebPMemoryWrite;
  picture.custom_ptr = &writer;
  const bool ok = WebPPictureImportRGBA(&picture, f->data[0], f->linesize[0]) &&
                  WebPEncode(&webp_config_, &picture);
  const int error = picture.error_code;
  WebPPictureFree(&picture);
  if (ok) webp_pending_.assign(reinterpret_cast<const char*>(writer.mem), writer.size);
  WebPMemoryWriterClear(&writer);
  if (!ok) fail("libwebp cannot encode the frame (error " + std::to_string(error) + ")", index);
  webp_pending_ms_ = ms;
}

void AnimationSink::finish_webp() {
  // The last frame lasts its own duration.
  push_webp(to_ms(last_pts_ + std::max<int64_t>(1, last_duration_)));
  WebPMuxAnimParams params{};
  params.bgcolor = 0x00000000;  // transparent
  params.loop_count = 0;        // forever, like GIF
  WebPData data;
  WebPDataInit(&data);
  if (WebPMuxSetAnimationParams(webp_, &params) != WEBP_MUX_OK ||
      WebPMuxSetCanvasSize(webp_, width_, height_) != WEBP_MUX_OK ||
      WebPMuxAssemble(webp_, &data) != WEBP_MUX_OK)
    fail("libwebp cannot assemble the animation");
  try {
    write_file(temporary_, std::string(reinterpret_cast<const char*>(data.bytes), data.size));
  } catch (...) {
    WebPDataClear(&data);
    throw;
  }
  WebPDataClear(&data);
}

void AnimationSink::finish() {
  if (finished_) return;
  if (frames_ == 0) fail("no frames were written");
  const int64_t last = std::max<int64_t>(1, last_duration_);
  if (options_.format == "webp") {
    finish_webp();
    WebPMuxDelete(webp_);
    webp_ = nullptr;
  } else {
    if (options_.format == "gif") {
      palettegen_->push(0, nullptr);
      Frame palette = palettegen_->pull();
      if (!palette) fail("palettegen gave no palette");
      palettegen_.reset();
      // Second pass: the spooled frames mapped on the clip's palette, then encoded.
      FilterChain paletteuse(
          final_.string(),
          {buffer_args(width_, height_, frame_format_, AVRational{1, 100}),
           buffer_args(palette.width(), palette.height(), palette.format(), AVRational{1, 100})},
          "paletteuse", "");
      paletteuse.push(1, palette.av());
      paletteuse.push(1, nullptr);
      const AVCodec* codec = avcodec_find_encoder_by_name("gif");
      if (!codec) fail("this FFmpeg has no gif encoder");
      encoder_.reset(avcodec_alloc_context3(codec));
      if (!encoder_) fail("out of memory");
      encoder_->width = width_;
      encoder_->height = height_;
      encoder_->pix_fmt = AV_PIX_FMT_PAL8;
      encoder_->time_base = AVRational{1, 100};
      encoder_->sample_aspect_ratio = AVRational{1, 1};
      int err = avcodec_open2(encoder_.get(), codec, nullptr);
      if (err < 0) fail("cannot open the gif encoder: " + av_error_string(err));
      open_muxer(encoder_.get());
      std::rewind(spool_);
      Frame frame = Frame::allocate(width_, height_, frame_format_);
      int64_t previous_cs = -1;
      auto encode_ready = [&] {
        while (Frame mapped = paletteuse.pull()) encode(mapped.av(), -1);
      };
      for (int64_t pts : spooled_pts_) {
        AVFrame* f = frame.av();
        if (av_frame_make_writable(f) < 0) fail("out of memory");
        for (int y = 0; y < height_; ++y)
          if (std::fread(f->data[0] + size_t(y) * f->linesize[0], 1, size_t(width_) * 4, spool_) !=
              size_t(width_) * 4)
            fail("cannot read back the frames' spool file");
        // Centiseconds, rounded from the absolute time: the total duration is kept.
        int64_t cs = av_rescale_q_rnd(pts, time_base_, AVRational{1, 100}, AV_ROUND_NEAR_INF);
        if (cs <= previous_cs) cs = previous_cs + 1;
        previous_cs = cs;
        f->pts = cs;
        paletteuse.push(0, f);
        encode_ready();
      }
      paletteuse.push(0, nullptr);
      encode_ready();
      std::fclose(spool_);
      spool_ = nullptr;
      fs::remove(spool_path_);
      const int64_t end_cs =
          av_rescale_q_rnd(last_pts_ + last, time_base_, AVRational{1, 100}, AV_ROUND_NEAR_INF);
      av_opt_set_int(out_->priv_data, "final_delay", std::max<int64_t>(1, end_cs - previous_cs), 0);
    } else {
      const AVRational seconds =
          av_mul_q(AVRational{int(std::min<int64_t>(last, INT32_MAX)), 1}, time_base_);
      av_opt_set_q(out_->priv_data, "final_delay", seconds, 0);
    }
    encode(nullptr, -1);
    int err = av_write_trailer(out_);
    if (err < 0) fail("cannot finish the file: " + av_error_string(err));
    err = avio_closep(&out_->pb);
    if (err < 0) fail("cannot write: " + av_error_string(err));
    avformat_free_context(out_);
    out_ = nullptr;
  }
  std::error_code ec;
  fs::rename(temporary_, final_, ec);
  if (ec) fail("cannot move the finished file into place: " + ec.message());
  finished_ = true;
}

void AnimationSink::abort() noexcept {
  if (spool_) std::fclose(spool_);
  spool_ = nullptr;
  palettegen_.reset();
  encoder_.reset();
  if (out_) {
    if (out_->pb) avio_closep(&out_->pb);
    avformat_free_context(out_);
    out_ = nullptr;
  }
  if (webp_) WebPMuxDelete(webp_);
  webp_ = nullptr;
  std::error_code ec;
  fs::remove(temporary_, ec);
  if (!spool_path_.empty()) fs::remove(spool_path_, ec);
  finished_ = true;
}

}  // namespace

std::string animation_format_of(const fs::path& output) {
  std::string ext = output.extension().string();
  for (char& c : ext) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (ext == ".gif") return "gif";
  if (ext == ".apng" || ext == ".png") return "apng";
  if (ext == ".webp") return "webp";
  return {};
}

std::unique_ptr<FrameSink> make_animation_sink(const fs::path& output, const VideoInfo& in,
                                               const AnimationOptions& options) {
  return std::make_unique<AnimationSink>(output, in, options);
}

}  // namespace upframe
