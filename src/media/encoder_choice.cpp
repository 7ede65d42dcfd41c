// Encoder choice: which encoder `auto` means here, whether a container holds it, the pixel
// format it encodes in and the options it is opened with.
#include "media/encoder_choice.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <map>
#include <mutex>

#include "upframe/cuda_device.hpp"
#include "upframe/error.hpp"
#include "upframe/media/frame_sink.hpp"

extern "C" {
#include <libavutil/mastering_display_metadata.h>
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

bool codec_takes(const AVCodec* codec, AVPixelFormat format) {
  if (!codec->pix_fmts) return true;
  for (const AVPixelFormat* f = codec->pix_fmts; *f != AV_PIX_FMT_NONE; ++f)
    if (*f == format) return true;
  return false;
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

}  // namespace

namespace media {

AVPixelFormat encoder_pixel_format(const AVCodec* codec, AVPixelFormat source,
                                   AVPixelFormat stream_format) {
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

AVDictionary* encoder_open_options(const std::string& encoder, int crf, AVPixelFormat pix_fmt,
                                   const AVFrame* first) {
  AVDictionary* opts = nullptr;
  const std::string quality = std::to_string(crf);
  if (encoder == "libx264" || encoder == "libsvtav1") {
    av_dict_set(&opts, "crf", quality.c_str(), 0);
  } else if (encoder == "libvpx-vp9" || encoder == "libaom-av1") {
    // Constant quality (b:v 0 lifts the default bitrate cap); row threads; a speed preset
    // near each library's real-time end (upscaled content, not archival masters).
    av_dict_set(&opts, "crf", quality.c_str(), 0);
    av_dict_set(&opts, "b", "0", 0);
    av_dict_set(&opts, "row-mt", "1", 0);
    av_dict_set(&opts, "cpu-used", encoder == "libvpx-vp9" ? "4" : "6", 0);
    if (encoder == "libvpx-vp9") av_dict_set(&opts, "deadline", "good", 0);
  } else if (encoder == "libx265") {
    av_dict_set(&opts, "crf", quality.c_str(), 0);
    av_dict_set(&opts, "x265-params", ("log-level=error:" + x265_hdr_params(first)).c_str(), 0);
  } else if (encoder == "h264_nvenc" || encoder == "hevc_nvenc") {
    av_dict_set(&opts, "cq", quality.c_str(), 0);
    if (encoder == "hevc_nvenc" && pixel_format_bit_depth(pix_fmt) > 8)
      av_dict_set(&opts, "profile", "main10", 0);
  } else if (encoder == "ffv1") {
    // Version 3 allows slice threads and checksums each slice.
    av_dict_set(&opts, "level", "3", 0);
    av_dict_set(&opts, "slicecrc", "1", 0);
  }
  return opts;
}

}  // namespace media

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
    // NVENC where the card has it, else the CPU encoders (docs/GPU.md).
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
}  // namespace upframe
