// Software decode of the best video stream.
//
// Truncation and damage are detected in three places, each an upframe::Error with stage
// "decode" and the index of the frame that could not be produced:
//  - at open: a file whose content is a known container but cannot be opened (an mp4 cut
//    before its moov index) is "damaged or truncated";
//  - while reading: AVERROR_INVALIDDATA or an I/O error from the demuxer (mov reports a
//    sample past the end of the file this way) or from the decoder;
//  - at the end: fewer frames than the container lists (nb_frames, when it has one, less a
//    tolerance of max(2, 2%) for edit lists), or, when it lists none (Matroska), the decoded
//    frames ending before 90% of the stream's duration (minus two frames).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <string>

#include "media/libav_helpers.hpp"
#include "media/webp_animation.hpp"
#include "upframe/cuda_device.hpp"
#include "upframe/error.hpp"
#include "upframe/media/decoder.hpp"

extern "C" {
#include <libavutil/hwcontext.h>
#include <libavutil/pixdesc.h>
}

namespace upframe {

using namespace media;

namespace {

bool valid(AVRational r) { return r.num > 0 && r.den > 0; }

// "00:00:02.000000000" (the DURATION tag Matroska muxers write per track) in seconds.
double parse_duration_tag(const AVDictionary* metadata) {
  const AVDictionaryEntry* entry = av_dict_get(metadata, "DURATION", nullptr, 0);
  if (!entry) return 0;
  int hours = 0, minutes = 0;
  double seconds = 0;
  if (std::sscanf(entry->value, "%d:%d:%lf", &hours, &minutes, &seconds) != 3) return 0;
  return hours * 3600.0 + minutes * 60.0 + seconds;
}

// Planar (or semi-planar) formats whose first plane is the luma, little-endian, 8 to 16 bits:
// what the duplicate detector reads (src/dedup/luma.cpp has the same rule).
bool has_plain_luma_plane(AVPixelFormat format) {
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(format);
  if (!desc || (desc->flags & (AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_PAL |
                               AV_PIX_FMT_FLAG_BITSTREAM | AV_PIX_FMT_FLAG_HWACCEL |
                               AV_PIX_FMT_FLAG_BE | AV_PIX_FMT_FLAG_FLOAT | AV_PIX_FMT_FLAG_BAYER)))
    return false;
  if (!(desc->flags & AV_PIX_FMT_FLAG_PLANAR) && desc->nb_components > 2) return false;
  const AVComponentDescriptor& y = desc->comp[0];
  if (y.plane != 0 || y.offset != 0) return false;
  const int bytes = y.depth > 8 ? 2 : 1;
  return y.step == bytes && y.depth >= 8 && y.depth <= 16 && y.shift + y.depth <= 8 * bytes;
}

// Frame threads when NVDEC decodes (see try_nvdec).
constexpr int kNvdecFrameThreads = 4;

bool is_image_demuxer(const std::string& name) {
  return name == "image2" || (name.size() > 5 && name.compare(name.size() - 5, 5, "_pipe") == 0);
}

}  // namespace

AVPixelFormat luma_frame_format(AVPixelFormat format) {
  if (format == AV_PIX_FMT_NONE || has_plain_luma_plane(format)) return format;
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(format);
  if (desc && (desc->flags & AV_PIX_FMT_FLAG_HWACCEL)) return format;  // downloaded later
  // A palette may hold transparency (GIF); RGB keeps full chroma resolution (4:4:4).
  const bool alpha = desc && (desc->flags & (AV_PIX_FMT_FLAG_ALPHA | AV_PIX_FMT_FLAG_PAL));
  int depth = 0;
  for (int c = 0; desc && c < desc->nb_components; ++c)
    depth = std::max(depth, desc->comp[c].depth);
  const bool deep = depth > 8;
  const bool gray = desc && desc->nb_components <= 2 && !(desc->flags & AV_PIX_FMT_FLAG_PAL);
  if (gray && !alpha) return deep ? AV_PIX_FMT_GRAY16LE : AV_PIX_FMT_GRAY8;
  if (alpha) return deep ? AV_PIX_FMT_YUVA444P10LE : AV_PIX_FMT_YUVA444P;
  const bool rgb = !desc || (desc->flags & AV_PIX_FMT_FLAG_RGB);
  if (rgb) return deep ? AV_PIX_FMT_YUV444P10LE : AV_PIX_FMT_YUV444P;
  // Packed or big-endian YUV: the same chroma layout, planar.
  static const AVPixelFormat kPlanar[] = {AV_PIX_FMT_YUV420P,     AV_PIX_FMT_YUV422P,
                                          AV_PIX_FMT_YUV444P,     AV_PIX_FMT_YUV420P10LE,
                                          AV_PIX_FMT_YUV422P10LE, AV_PIX_FMT_YUV444P10LE,
                                          AV_PIX_FMT_YUV420P16LE, AV_PIX_FMT_YUV422P16LE,
                                          AV_PIX_FMT_YUV444P16LE, AV_PIX_FMT_NONE};
  AVPixelFormat best = avcodec_find_best_pix_fmt_of_list(kPlanar, format, 0, nullptr);
  return best == AV_PIX_FMT_NONE ? AV_PIX_FMT_YUV444P : best;
}

namespace {

// The best video stream that is not cover art; -1 if none.
int best_video_stream(const AVFormatContext* fmt) {
  int index = av_find_best_stream(const_cast<AVFormatContext*>(fmt), AVMEDIA_TYPE_VIDEO, -1, -1,
                                  nullptr, 0);
  if (index >= 0 && (fmt->streams[index]->disposition & AV_DISPOSITION_ATTACHED_PIC)) {
    index = -1;
    for (unsigned i = 0; i < fmt->nb_streams; ++i) {
      const AVStream* s = fmt->streams[i];
      if (s->codecpar->codec_type == AVMEDIA_TYPE_VIDEO &&
          !(s->disposition & AV_DISPOSITION_ATTACHED_PIC)) {
        index = static_cast<int>(i);
        break;
      }
    }
  }
  return index;
}

}  // namespace

struct VideoDecoder::Impl {
  std::string path;
  InputContextPtr input;
  CodecContextPtr codec;
  AVStream* stream = nullptr;
  VideoInfo info;
  PacketPtr packet = make_packet();
  int64_t frames_out = 0;
  int64_t last_pts = AV_NOPTS_VALUE;
  int64_t last_duration = 0;
  int64_t default_duration = 1;   // one frame in time_base units
  int64_t container_frames = -1;  // nb_frames as the container lists it
  double stream_duration = 0;     // seconds, 0 when unknown
  bool flushing = false;
  bool finished = false;
  bool strict = false;
  std::atomic<int64_t> damaged_frames{0};
  // DecoderOptions::start_pts / end_pts.
  std::optional<int64_t> start_pts, end_pts;

  std::optional<Frame> next_frame();
  // NVDEC: the CUDA device context handed to libavcodec, and whether it is decoding (set by
  // the get_format callback; libavcodec falls back to software by itself when it declines).
  BufferRefPtr hw_device;
  bool hw_active = false;
  bool hw_fallback_logged = false;
  PixelConverter download_converter;
  bool keep_on_device = false;
  // Frames kept on the device leave NVDEC's surfaces through it.
  std::unique_ptr<DeviceFrameCopier> device_copier;
  // luma_frames: the one conversion of frames the detector cannot read.
  bool luma_frames = false;
  PixelConverter luma_converter;
  // Animated WebP: libwebp decodes, not libavcodec.
  std::unique_ptr<WebpAnimationReader> webp;

  Frame to_luma_format(Frame frame) {
    if (!luma_frames || frame.on_device()) return frame;
    const AVPixelFormat target = luma_frame_format(frame.format());
    if (target == frame.format()) return frame;
    return luma_converter.convert(frame, target);
  }

  void open_webp_animation(const std::filesystem::path& file) {
    webp = std::make_unique<WebpAnimationReader>(file);
    info.path = path;
    info.container = "webp";
    info.codec = "webp";
    info.stream_index = 0;
    info.width = webp->width();
    info.height = webp->height();
    info.pixel_format = info.stream_pixel_format = AV_PIX_FMT_RGBA;
    info.time_base = AVRational{1, 1000};
    info.frame_count = webp->frame_count();
    info.duration_seconds = double(webp->duration_ms()) / 1000.0;
    if (webp->duration_ms() > 0)
      av_reduce(&info.avg_frame_rate.num, &info.avg_frame_rate.den, webp->frame_count() * 1000,
                webp->duration_ms(), 1 << 30);
    info.variable_frame_rate = webp->variable_durations();
    info.sample_aspect_ratio = AVRational{1, 1};
    info.color_range = AVCOL_RANGE_JPEG;
  }

  [[noreturn]] void fail(const std::string& problem) const {
    throw Error(path, problem, ExitCode::kProcessingFailed, "decode", frames_out);
  }

  // A frame the decoder concealed errors in (libavcodec's error resilience filled what it could
  // not decode from its neighbours): a warning naming it, or the job's end under `strict`.
  void check_damage(const AVFrame* frame) {
    if (!frame->decode_error_flags && !(frame->flags & AV_FRAME_FLAG_CORRUPT)) return;
    if (start_pts && frame->pts < *start_pts) return;  // before the segment: dropped
    const double start = stream->start_time != AV_NOPTS_VALUE ? double(stream->start_time) : 0;
    const double seconds = (double(frame->pts) - start) * av_q2d(info.time_base);
    const std::string what = fmt::format("frame {} at {:.3f} s is damaged", frames_out, seconds);
    if (strict)
      fail(what + " (the decoder concealed errors in it; without --strict it is a warning)");
    ++damaged_frames;
    spdlog::warn("{}: {}: the decoder concealed errors in it", path, what);
  }

  void check_complete() const {
    if (container_frames > 0) {
      int64_t tolerance = std::max<int64_t>(2, container_frames / 50);
      if (frames_out < container_frames - tolerance)
        fail("truncated or damaged: decoded " + std::to_string(frames_out) + " of the " +
             std::to_string(container_frames) + " frames the container lists");
      return;
    }
    if (stream_duration > 0 && last_pts != AV_NOPTS_VALUE) {
      double tb = av_q2d(info.time_base);
      double start = stream->start_time != AV_NOPTS_VALUE ? stream->start_time * tb : 0;
      double end = (last_pts + last_duration) * tb - start;
      double frame = default_duration * tb;
      if (end < 0.9 * stream_duration - 2 * frame)
        fail("truncated or damaged: the frames end at " + std::to_string(end) + " s of the " +
             std::to_string(stream_duration) + " s the container states");
    }
  }

  void stamp(AVFrame* frame) {
    int64_t pts = frame->best_effort_timestamp;
    if (pts == AV_NOPTS_VALUE) pts = frame->pts;
    if (pts == AV_NOPTS_VALUE) {
      // No timestamp: one frame after the previous one.
      pts = last_pts == AV_NOPTS_VALUE ? 0 : last_pts + std::max<int64_t>(1, last_duration);
    } else if (last_pts != AV_NOPTS_VALUE && pts <= last_pts) {
      // Encoders and muxers need strictly increasing timestamps.
      spdlog::debug("{}: frame {} pts {} not after {}, moved", path, frames_out, pts, last_pts);
      pts = last_pts + 1;
    }
    frame->pts = pts;
    last_duration = frame->pkt_duration > 0 ? frame->pkt_duration : default_duration;
    frame->pkt_duration = last_duration;  // sinks that store durations (GIF, APNG) read it
    last_pts = pts;
    sanitize_colour_fields(frame);
    // The container may describe colour the bitstream does not.
    if (frame->color_primaries == AVCOL_PRI_UNSPECIFIED)
      frame->color_primaries = info.color_primaries;
    if (frame->color_trc == AVCOL_TRC_UNSPECIFIED) frame->color_trc = info.color_trc;
    if (frame->colorspace == AVCOL_SPC_UNSPECIFIED) frame->colorspace = info.colorspace;
    if (frame->color_range == AVCOL_RANGE_UNSPECIFIED) frame->color_range = info.color_range;
    if (frame->chroma_location == AVCHROMA_LOC_UNSPECIFIED)
      frame->chroma_location = info.chroma_location;
    if (!valid(frame->sample_aspect_ratio)) frame->sample_aspect_ratio = info.sample_aspect_ratio;
  }

  // NVDEC frames stay on the device when asked (keep_on_device: the CUDA detector and upscaler
  // take them), copied out of the decoder's surface (DeviceFrameCopier says why); otherwise
  // they are copied to host memory here, as the planar formats software decode gives
  // (nv12 -> yuv420p, p010 -> yuv420p10le), what every CPU stage expects.
  Frame from_device(Frame frame) {
    if (!frame.on_device()) return frame;
    if (keep_on_device) {
      if (!device_copier) device_copier = std::make_unique<DeviceFrameCopier>();
      return device_copier->copy(frame);
    }
    Frame host = frame.to_host();
    const int depth = pixel_format_bit_depth(host.format());
    return download_converter.convert(host,
                                      depth > 8 ? AV_PIX_FMT_YUV420P10LE : AV_PIX_FMT_YUV420P);
  }

  // Sets up NVDEC for `decoder` when asked (auto or cuda) and possible; otherwise logs the
  // reason (docs/INTERFACE.md, "Pipeline and fallbacks") and leaves the context for software decode.
  void try_nvdec(AVCodecContext* ctx, const AVCodec* decoder, const std::string& device) {
    if (device == "cpu") return;
    const bool asked = device == "cuda";
    const CudaDeviceInfo gpu = cuda_device_info();
    // Without a GPU, CPU decode is the normal case: debug only.
    auto fallback = [&](const std::string& why) {
      spdlog::log(asked              ? spdlog::level::warn
                  : gpu.device_found ? spdlog::level::info
                                     : spdlog::level::debug,
                  "GPU decode unavailable ({}), using CPU decode", why);
    };
    if (!gpu.available) return fallback(gpu.reason);
    bool has_config = false;
    for (int i = 0;; ++i) {
      const AVCodecHWConfig* config = avcodec_get_hw_config(decoder, i);
      if (!config) break;
      if ((config->methods & AV_CODEC_HW_CONFIG_METHOD_HW_DEVICE_CTX) &&
          config->device_type == AV_HWDEVICE_TYPE_CUDA)
        has_config = true;
    }
    if (!has_config) return fallback(std::string("no NVDEC for ") + decoder->name);
    // Frames kept on the device need the runtime's primary context (the detector's and the
    // upscaler's kernels read them); where FFmpeg cannot share it, a private context with
    // frames copied to the host still decodes on the GPU.
    std::string why;
    AVBufferRef* raw = create_cuda_hwdevice(keep_on_device, &why);
    if (!raw && keep_on_device) {
      spdlog::info("NVDEC frames cannot stay on the device ({}); copying them to the host", why);
      keep_on_device = false;
      raw = create_cuda_hwdevice(false, &why);
    }
    if (!raw) return fallback(why);
    hw_device.reset(raw);
    ctx->hw_device_ctx = av_buffer_ref(raw);
    // FFmpeg 5.1 gives NVDEC a surface per frame thread on top of the DPB and 5 more, and
    // cuvidCreateDecoder refuses more than 32: with libavcodec's automatic 16 threads a stream
    // with 12 reference frames would silently fall back to CPU decode. On NVDEC the threads only
    // parse; 4 leave room for a DPB of up to 23 and still help a CPU fallback.
    if (ctx->thread_count <= 0 || ctx->thread_count > kNvdecFrameThreads)
      ctx->thread_count = kNvdecFrameThreads;
    ctx->opaque = this;
    ctx->get_format = [](AVCodecContext* c, const AVPixelFormat* formats) {
      auto* self = static_cast<Impl*>(c->opaque);
      for (const AVPixelFormat* f = formats; *f != AV_PIX_FMT_NONE; ++f)
        if (*f == AV_PIX_FMT_CUDA) {
          self->hw_active = true;
          return *f;
        }
      self->hw_active = false;
      if (!self->hw_fallback_logged) {
        self->hw_fallback_logged = true;
        // libavcodec also lands here when creating the NVDEC decoder failed (its own log says
        // why), having dropped the CUDA format from the list.
        spdlog::info(
            "GPU decode unavailable (NVDEC cannot decode this stream, {}, or its decoder could "
            "not be created), using CPU decode",
            av_get_pix_fmt_name(c->sw_pix_fmt));
      }
      // The first software format libavcodec offers: its own default choice.
      for (const AVPixelFormat* f = formats; *f != AV_PIX_FMT_NONE; ++f)
        if (!(av_pix_fmt_desc_get(*f)->flags & AV_PIX_FMT_FLAG_HWACCEL)) return *f;
      return AV_PIX_FMT_NONE;
    };
    hw_active = true;  // until get_format says otherwise
  }
};

VideoDecoder::VideoDecoder(const std::filesystem::path& path, const DecoderOptions& options)
    : impl_(std::make_unique<Impl>()) {
  Impl& d = *impl_;
  d.path = path.string();
  if (options.device != "cpu" && options.device != "auto" && options.device != "cuda")
    throw UsageError(d.path, "unknown decode device '" + options.device + "'");
  d.luma_frames = options.luma_frames;
  d.strict = options.strict;
  if (is_animated_webp(path)) {
    d.open_webp_animation(path);
    if (d.luma_frames) d.info.pixel_format = luma_frame_format(d.info.pixel_format);
    d.info.bit_depth = pixel_format_bit_depth(d.info.pixel_format);
    return;
  }
  d.input = open_input(path);
  AVFormatContext* fmt = d.input.get();

  const int index = best_video_stream(fmt);
  if (index < 0) d.fail("no video stream");
  d.stream = fmt->streams[index];
  for (unsigned i = 0; i < fmt->nb_streams; ++i)
    if (static_cast<int>(i) != index) fmt->streams[i]->discard = AVDISCARD_ALL;

  const AVCodecParameters* par = d.stream->codecpar;
  const AVCodec* decoder = avcodec_find_decoder(par->codec_id);
  if (!decoder) d.fail(std::string("no decoder for the codec ") + avcodec_get_name(par->codec_id));
  // A fresh software-decoding context (made again if NVDEC fails to open).
  auto new_context = [&] {
    d.codec.reset(avcodec_alloc_context3(decoder));
    if (!d.codec) d.fail("out of memory allocating a decoder");
    AVCodecContext* ctx = d.codec.get();
    if (avcodec_parameters_to_context(ctx, par) < 0) d.fail("cannot set up the decoder");
    ctx->pkt_timebase = d.stream->time_base;
    ctx->thread_count = options.threads;
    ctx->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE;
    return ctx;
  };
  AVCodecContext* ctx = new_context();
  d.keep_on_device = options.keep_on_device;
  d.try_nvdec(ctx, decoder, options.device);
  int err = avcodec_open2(ctx, decoder, nullptr);
  if (err < 0 && d.hw_device) {
    spdlog::warn("GPU decode unavailable (cannot open {} with NVDEC: {}), using CPU decode",
                 decoder->name, av_error_string(err));
    d.hw_device.reset();
    d.hw_active = false;
    ctx = new_context();
    err = avcodec_open2(ctx, decoder, nullptr);
  }
  if (err < 0)
    d.fail(std::string("cannot open the ") + decoder->name + " decoder: " + av_error_string(err));

  VideoInfo& info = d.info;
  info.path = d.path;
  info.container = fmt->iformat->name;
  info.codec = avcodec_get_name(par->codec_id);
  if (const AVCodecDescriptor* desc = avcodec_descriptor_get(par->codec_id))
    info.lossless_codec =
        (desc->props & AV_CODEC_PROP_LOSSLESS) && !(desc->props & AV_CODEC_PROP_LOSSY);
  info.stream_index = index;
  info.width = par->width;
  info.height = par->height;
  info.pixel_format =
      ctx->pix_fmt != AV_PIX_FMT_NONE ? ctx->pix_fmt : static_cast<AVPixelFormat>(par->format);
  if (info.pixel_format == AV_PIX_FMT_NONE || info.width <= 0)
    d.fail("not a valid " + info.codec +
           " stream: its picture size and pixel format cannot be read");
  info.stream_pixel_format = info.pixel_format;
  if (d.luma_frames) {
    const AVPixelFormat native = info.pixel_format;
    info.pixel_format = luma_frame_format(native);
    if (info.pixel_format != native)
      spdlog::info("{}: {} frames converted to {} for duplicate detection and upscaling", d.path,
                   av_get_pix_fmt_name(native), av_get_pix_fmt_name(info.pixel_format));
  }
  info.bit_depth = pixel_format_bit_depth(info.pixel_format);
  info.time_base = d.stream->time_base;
  info.avg_frame_rate = valid(d.stream->avg_frame_rate) ? d.stream->avg_frame_rate
                        : valid(d.stream->r_frame_rate) ? d.stream->r_frame_rate
                                                        : AVRational{0, 1};
  info.sample_aspect_ratio = av_guess_sample_aspect_ratio(fmt, d.stream, nullptr);
  if (!valid(info.sample_aspect_ratio)) info.sample_aspect_ratio = AVRational{1, 1};

  if (d.stream->duration != AV_NOPTS_VALUE && d.stream->duration > 0)
    d.stream_duration = d.stream->duration * av_q2d(d.stream->time_base);
  else
    d.stream_duration = parse_duration_tag(d.stream->metadata);
  if (d.stream_duration <= 0 && fmt->duration != AV_NOPTS_VALUE && fmt->duration > 0)
    d.stream_duration = fmt->duration / static_cast<double>(AV_TIME_BASE);
  info.duration_seconds = d.stream_duration;

  if (valid(info.avg_frame_rate))
    d.default_duration =
        std::max<int64_t>(1, av_rescale_q(1, av_inv_q(info.avg_frame_rate), info.time_base));
  if (d.stream->nb_frames > 0) {
    d.container_frames = d.stream->nb_frames;
    info.frame_count = d.stream->nb_frames;
  } else if (d.stream_duration > 0 && valid(info.avg_frame_rate)) {
    info.frame_count = std::llround(d.stream_duration * av_q2d(info.avg_frame_rate));
  }
  if (valid(d.stream->r_frame_rate) && valid(d.stream->avg_frame_rate)) {
    double r = av_q2d(d.stream->r_frame_rate), avg = av_q2d(d.stream->avg_frame_rate);
    info.variable_frame_rate = std::abs(r - avg) > 0.005 * r;
  }
  info.color_primaries = par->color_primaries;
  info.color_trc = par->color_trc;
  info.colorspace = par->color_space;
  info.color_range = par->color_range;
  info.chroma_location = par->chroma_location;
  info.bit_rate = par->bit_rate;
  if (info.bit_rate <= 0 && fmt->nb_streams == 1 && fmt->bit_rate > 0)
    info.bit_rate = fmt->bit_rate;
  info.is_image = is_image_demuxer(info.container);
  if (info.is_image) {
    info.frame_count = 1;
    d.container_frames = -1;
    d.stream_duration = 0;
  }
  d.start_pts = options.start_pts;
  d.end_pts = options.end_pts;
  if (d.start_pts) {
    // To the keyframe at or before the start; frames before it are dropped in next().
    err = av_seek_frame(fmt, index, *d.start_pts, AVSEEK_FLAG_BACKWARD);
    if (err < 0)
      spdlog::info(
          "{}: cannot seek to pts {} ({}): decoding from the start and dropping the "
          "frames before it",
          d.path, *d.start_pts, av_error_string(err));
    else
      avcodec_flush_buffers(ctx);
  }
}

VideoPacketIndex index_video_packets(const std::filesystem::path& path) {
  const std::string name = path.string();
  InputContextPtr input = open_input(path);
  AVFormatContext* fmt = input.get();
  const int index = best_video_stream(fmt);
  if (index < 0) throw Error(name, "no video stream");
  for (unsigned i = 0; i < fmt->nb_streams; ++i)
    if (static_cast<int>(i) != index) fmt->streams[i]->discard = AVDISCARD_ALL;
  VideoPacketIndex result;
  result.time_base = fmt->streams[index]->time_base;
  PacketPtr packet = make_packet();
  for (;;) {
    const int err = av_read_frame(fmt, packet.get());
    if (err == AVERROR_EOF) break;
    if (err < 0)
      throw Error(name, "cannot read (truncated or damaged file?): " + av_error_string(err));
    if (packet->stream_index == index) {
      const int64_t pts = packet->pts != AV_NOPTS_VALUE ? packet->pts : packet->dts;
      if (pts == AV_NOPTS_VALUE)
        throw Error(name, "video packets without timestamps: cannot cut the stream at keyframes");
      result.pts.push_back(pts);
      if (packet->flags & AV_PKT_FLAG_KEY) result.keyframe_pts.push_back(pts);
    }
    av_packet_unref(packet.get());
  }
  std::sort(result.pts.begin(), result.pts.end());
  std::sort(result.keyframe_pts.begin(), result.keyframe_pts.end());
  if (result.pts.empty()) throw Error(name, "no video frames");
  return result;
}

VideoDecoder::~VideoDecoder() = default;

const VideoInfo& VideoDecoder::info() const { return impl_->info; }

std::string VideoDecoder::backend() const { return impl_->hw_active ? "nvdec" : "cpu"; }

int64_t VideoDecoder::damaged_frames() const { return impl_->damaged_frames.load(); }

std::optional<Frame> VideoDecoder::next() {
  Impl& d = *impl_;
  for (;;) {
    std::optional<Frame> frame = d.next_frame();
    if (!frame) return frame;
    if (d.end_pts && frame->pts() >= *d.end_pts) {
      d.finished = true;
      return std::nullopt;
    }
    if (!d.start_pts || frame->pts() >= *d.start_pts) return frame;
  }
}

std::optional<Frame> VideoDecoder::Impl::next_frame() {
  Impl& d = *this;
  if (d.finished) return std::nullopt;
  if (d.webp) {
    std::optional<Frame> frame = d.webp->next();
    if (!frame) {
      d.finished = true;
      return std::nullopt;
    }
    ++d.frames_out;
    return d.to_luma_format(std::move(*frame));
  }
  AVFrame* raw = av_frame_alloc();
  if (!raw) d.fail("out of memory allocating a frame");
  Frame frame = Frame::adopt(raw);
  for (;;) {
    int err = avcodec_receive_frame(d.codec.get(), raw);
    if (err >= 0) {
      d.stamp(raw);
      d.check_damage(raw);
      ++d.frames_out;
      return d.to_luma_format(d.from_device(std::move(frame)));
    }
    if (err == AVERROR_EOF) {
      d.finished = true;
      if (!d.start_pts && !d.end_pts) d.check_complete();
      return std::nullopt;
    }
    if (err != AVERROR(EAGAIN))
      d.fail("cannot decode (damaged or truncated data): " + av_error_string(err));

    // The decoder wants input.
    if (d.flushing) d.fail("the decoder stopped without finishing");
    err = av_read_frame(d.input.get(), d.packet.get());
    if (err == AVERROR_EOF) {
      d.flushing = true;
      avcodec_send_packet(d.codec.get(), nullptr);
      continue;
    }
    if (err < 0) d.fail("cannot read (truncated or damaged file?): " + av_error_string(err));
    if (d.packet->stream_index != d.stream->index) {
      av_packet_unref(d.packet.get());
      continue;
    }
    err = avcodec_send_packet(d.codec.get(), d.packet.get());
    av_packet_unref(d.packet.get());
    if (err < 0 && err != AVERROR(EAGAIN))
      d.fail("cannot decode (damaged data): " + av_error_string(err));
  }
}

}  // namespace upframe
