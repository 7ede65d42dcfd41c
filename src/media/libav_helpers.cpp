#include "media/libav_helpers.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include "upframe/error.hpp"

extern "C" {
#include <libavutil/hwcontext.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
}

namespace upframe::media {

namespace fs = std::filesystem;

PacketPtr make_packet() {
  PacketPtr packet(av_packet_alloc());
  if (!packet) throw Error({}, "out of memory allocating a packet");
  return packet;
}

namespace {

// After avformat_open_input failed: does the content (not the name) look like a media
// container? Then the file is damaged (e.g. an mp4 cut before its moov index), not foreign.
std::string recognised_container(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::string head(64 * 1024 + AVPROBE_PADDING_SIZE, '\0');
  in.read(head.data(), 64 * 1024);
  std::streamsize got = in.gcount();
  if (got <= 0) return {};
  AVProbeData probe{};
  probe.filename = "";
  probe.buf = reinterpret_cast<unsigned char*>(head.data());
  probe.buf_size = static_cast<int>(got);
  int score = 0;
  const AVInputFormat* format = av_probe_input_format2(&probe, 1, &score);
  if (format && score > AVPROBE_SCORE_MAX / 4) return format->name;
  return {};
}

}  // namespace

InputContextPtr open_input(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec))
    throw Error(path.string(), "file not found", ExitCode::kProcessingFailed, "decode");
  if (fs::is_directory(path, ec))
    throw Error(path.string(), "is a folder, not a media file", ExitCode::kProcessingFailed,
                "decode");
  if (access(path.c_str(), R_OK) != 0)
    throw Error(path.string(), "cannot read the file: permission denied",
                ExitCode::kProcessingFailed, "decode");
  if (fs::file_size(path, ec) == 0)
    throw Error(path.string(), "empty file, not a media file", ExitCode::kProcessingFailed,
                "decode");

  AVFormatContext* raw = nullptr;
  int err = avformat_open_input(&raw, path.c_str(), nullptr, nullptr);
  if (err < 0) {
    std::string container = recognised_container(path);
    if (!container.empty())
      throw Error(path.string(),
                  "damaged or truncated " + container + " file: " + av_error_string(err),
                  ExitCode::kProcessingFailed, "decode");
    if (err == AVERROR_INVALIDDATA)
      throw Error(path.string(), "not a media file FFmpeg can read", ExitCode::kProcessingFailed,
                  "decode");
    throw Error(path.string(), "cannot open: " + av_error_string(err), ExitCode::kProcessingFailed,
                "decode");
  }
  InputContextPtr input(raw);
  err = avformat_find_stream_info(input.get(), nullptr);
  if (err < 0)
    throw Error(path.string(), "cannot read the stream information: " + av_error_string(err),
                ExitCode::kProcessingFailed, "decode");
  for (unsigned i = 0; i < input->nb_streams; ++i)
    sanitize_colour_fields(input->streams[i]->codecpar);
  return input;
}

namespace {

// Resets an enum field holding a value outside [0, end) to `fallback`, reading it as an int
// (the enums are int-sized; a load as the enum type would be undefined behaviour).
template <typename Enum>
void clamp_enum(Enum* field, int end, Enum fallback) {
  static_assert(sizeof(Enum) == sizeof(int));
  int value = 0;
  std::memcpy(&value, field, sizeof value);
  if (value < 0 || value >= end) *field = fallback;
}

}  // namespace

void sanitize_colour_fields(AVCodecParameters* par) {
  clamp_enum(&par->color_primaries, AVCOL_PRI_NB, AVCOL_PRI_UNSPECIFIED);
  clamp_enum(&par->color_trc, AVCOL_TRC_NB, AVCOL_TRC_UNSPECIFIED);
  clamp_enum(&par->color_space, AVCOL_SPC_NB, AVCOL_SPC_UNSPECIFIED);
  clamp_enum(&par->color_range, AVCOL_RANGE_NB, AVCOL_RANGE_UNSPECIFIED);
  clamp_enum(&par->chroma_location, AVCHROMA_LOC_NB, AVCHROMA_LOC_UNSPECIFIED);
  clamp_enum(&par->field_order, AV_FIELD_BT + 1, AV_FIELD_UNKNOWN);
}

void sanitize_colour_fields(AVFrame* frame) {
  clamp_enum(&frame->color_primaries, AVCOL_PRI_NB, AVCOL_PRI_UNSPECIFIED);
  clamp_enum(&frame->color_trc, AVCOL_TRC_NB, AVCOL_TRC_UNSPECIFIED);
  clamp_enum(&frame->colorspace, AVCOL_SPC_NB, AVCOL_SPC_UNSPECIFIED);
  clamp_enum(&frame->color_range, AVCOL_RANGE_NB, AVCOL_RANGE_UNSPECIFIED);
  clamp_enum(&frame->chroma_location, AVCHROMA_LOC_NB, AVCHROMA_LOC_UNSPECIFIED);
}

PixelConverter::~PixelConverter() { sws_freeContext(sws_); }

namespace {

bool is_rgb_like(AVPixelFormat format) {
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(format);
  return desc && ((desc->flags & AV_PIX_FMT_FLAG_RGB) || desc->nb_components <= 2);
}

bool is_full_range(AVPixelFormat format, AVColorRange range) {
  if (is_rgb_like(format)) return true;
  switch (format) {
    case AV_PIX_FMT_YUVJ420P:
    case AV_PIX_FMT_YUVJ422P:
    case AV_PIX_FMT_YUVJ440P:
    case AV_PIX_FMT_YUVJ444P:
    case AV_PIX_FMT_YUVJ411P:
      return true;
    default:
      return range == AVCOL_RANGE_JPEG;
  }
}

}  // namespace

Frame PixelConverter::convert(const Frame& input, AVPixelFormat format) {
  Frame frame = input.to_host();
  if (frame.format() == format) return frame;
  const AVFrame* src = frame.av();
  sws_ = sws_getCachedContext(
      sws_, src->width, src->height, frame.format(), src->width, src->height, format,
      SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT | SWS_FULL_CHR_H_INP, nullptr, nullptr,
      nullptr);
  if (!sws_)
    throw Error({}, std::string("cannot convert pixels from ") +
                        av_get_pix_fmt_name(frame.format()) + " to " + av_get_pix_fmt_name(format));
  // The frame's matrix and range drive the YUV<->RGB step (libav's default, BT.601, when
  // the frame does not say); RGB made into YUV gets BT.601, and is tagged so.
  const bool src_rgb = is_rgb_like(frame.format());
  const bool dst_rgb = is_rgb_like(format);
  const bool src_full = is_full_range(frame.format(), src->color_range);
  const bool dst_full =
      dst_rgb || is_full_range(format, src_rgb ? AVCOL_RANGE_MPEG : src->color_range);
  const int* coefficients = sws_getCoefficients(src_rgb ? SWS_CS_ITU601 : src->colorspace);
  sws_setColorspaceDetails(sws_, coefficients, src_full, coefficients, dst_full, 0, 1 << 16,
                           1 << 16);

  Frame out = Frame::allocate(src->width, src->height, format);
  sws_scale(sws_, src->data, src->linesize, 0, src->height, out.av()->data, out.av()->linesize);
  av_frame_copy_props(out.av(), src);
  out.av()->color_range = dst_full ? AVCOL_RANGE_JPEG : AVCOL_RANGE_MPEG;
  if (dst_rgb)
    out.av()->colorspace = AVCOL_SPC_RGB;
  else if (src_rgb)
    out.av()->colorspace = AVCOL_SPC_BT470BG;
  return out;
}

std::string image_encoder_name(const std::string& format_in) {
  std::string format = format_in;
  std::transform(format.begin(), format.end(), format.begin(), ::tolower);
  if (!format.empty() && format[0] == '.') format.erase(0, 1);
  if (format == "png") return "png";
  if (format == "jpg" || format == "jpeg") return "mjpeg";
  if (format == "webp") return "libwebp";
  if (format == "bmp") return "bmp";
  if (format == "tif" || format == "tiff") return "tiff";
  return {};
}

namespace {

bool codec_takes(const AVCodec* codec, AVPixelFormat format) {
  if (!codec->pix_fmts) return true;
  for (const AVPixelFormat* f = codec->pix_fmts; *f != AV_PIX_FMT_NONE; ++f)
    if (*f == format) return true;
  return false;
}

}  // namespace

AVPixelFormat image_pixel_format(const AVCodec* codec, AVPixelFormat source) {
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(source);
  const bool alpha = desc && (desc->flags & AV_PIX_FMT_FLAG_ALPHA);
  const bool deep = pixel_format_bit_depth(source) > 8;
  const bool gray = desc && desc->nb_components <= 2;
  if (codec->id == AV_CODEC_ID_MJPEG) {
    // JPEG is full-range YUV; keep the source's chroma subsampling.
    if (desc && !(desc->flags & AV_PIX_FMT_FLAG_RGB) && !gray) {
      if (desc->log2_chroma_w == 1 && desc->log2_chroma_h == 1) return AV_PIX_FMT_YUVJ420P;
      if (desc->log2_chroma_w == 1 && desc->log2_chroma_h == 0) return AV_PIX_FMT_YUVJ422P;
    }
    return AV_PIX_FMT_YUVJ444P;
  }
  if (codec_takes(codec, source)) return source;
  if (codec->id == AV_CODEC_ID_PNG) {
    if (gray) {
      if (alpha) return deep ? AV_PIX_FMT_YA16BE : AV_PIX_FMT_YA8;
      return deep ? AV_PIX_FMT_GRAY16BE : AV_PIX_FMT_GRAY8;
    }
    if (alpha) return deep ? AV_PIX_FMT_RGBA64BE : AV_PIX_FMT_RGBA;
    return deep ? AV_PIX_FMT_RGB48BE : AV_PIX_FMT_RGB24;
  }
  AVPixelFormat best = avcodec_find_best_pix_fmt_of_list(codec->pix_fmts, source, alpha, nullptr);
  return best == AV_PIX_FMT_NONE ? codec->pix_fmts[0] : best;
}

ImageEncoder::ImageEncoder(const std::string& encoder_name, int quality, int threads,
                           std::string path_for_errors)
    : codec_(avcodec_find_encoder_by_name(encoder_name.c_str())),
      quality_(std::clamp(quality, 1, 100)),
      threads_(threads),
      path_(std::move(path_for_errors)),
      packet_(make_packet()) {
  if (!codec_)
    throw Error(path_, "the image encoder " + encoder_name + " is not available in this FFmpeg",
                ExitCode::kProcessingFailed, "save");
}

void ImageEncoder::open(const Frame& frame) {
  ctx_.reset(avcodec_alloc_context3(codec_));
  if (!ctx_) throw Error(path_, "out of memory allocating an encoder");
  AVCodecContext* ctx = ctx_.get();
  ctx->width = frame.width();
  ctx->height = frame.height();
  ctx->pix_fmt = image_pixel_format(codec_, frame.data_format());
  ctx->time_base = AVRational{1, 25};
  ctx->sample_aspect_ratio = frame.av()->sample_aspect_ratio;
  ctx->thread_count = threads_;
  if (codec_->capabilities & AV_CODEC_CAP_FRAME_THREADS) ctx->thread_type = FF_THREAD_FRAME;
  if (codec_->id == AV_CODEC_ID_MJPEG) {
    // Quality 100 -> qscale 2 (best), 1 -> 31 (worst), as ffmpeg's -q:v.
    int qscale = 2 + ((100 - quality_) * 29 + 49) / 99;
    ctx->flags |= AV_CODEC_FLAG_QSCALE;
    ctx->global_quality = qscale * FF_QP2LAMBDA;
    ctx->color_range = AVCOL_RANGE_JPEG;
  } else if (codec_->id == AV_CODEC_ID_WEBP) {
    av_opt_set_double(ctx->priv_data, "quality", quality_, 0);
  }
  int err = avcodec_open2(ctx, codec_, nullptr);
  if (err < 0)
    throw Error(
        path_, std::string("cannot open the ") + codec_->name + " encoder: " + av_error_string(err),
        ExitCode::kProcessingFailed, "save");
}

void ImageEncoder::send(const Frame& input) {
  if (!ctx_) open(input);
  if (input.width() != ctx_->width || input.height() != ctx_->height)
    throw Error(path_, "frame size changed mid-stream", ExitCode::kProcessingFailed, "save");
  Frame frame = converter_.convert(input, ctx_->pix_fmt).ref();
  frame.av()->quality = ctx_->global_quality;
  frame.av()->pict_type = AV_PICTURE_TYPE_NONE;
  int err = avcodec_send_frame(ctx_.get(), frame.av());
  if (err < 0)
    throw Error(path_, "cannot encode the image: " + av_error_string(err),
                ExitCode::kProcessingFailed, "save");
}

void ImageEncoder::flush() {
  if (ctx_) avcodec_send_frame(ctx_.get(), nullptr);
}

bool ImageEncoder::receive(std::string& bytes) {
  if (!ctx_) return false;
  int err = avcodec_receive_packet(ctx_.get(), packet_.get());
  if (err == AVERROR(EAGAIN) || err == AVERROR_EOF) return false;
  if (err < 0)
    throw Error(path_, "cannot encode the image: " + av_error_string(err),
                ExitCode::kProcessingFailed, "save");
  bytes.assign(reinterpret_cast<const char*>(packet_->data), packet_->size);
  av_packet_unref(packet_.get());
  return true;
}

void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (out) out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out)
    throw Error(path.string(), "cannot write the file (" + std::string(strerror(errno)) + ")",
                ExitCode::kProcessingFailed, "save");
}

fs::path temporary_sibling(const fs::path& final_path) {
  fs::path clean = final_path;
  if (!clean.has_filename()) clean = clean.parent_path();  // "frames/" names the folder
  // Appended piece by piece: GCC 12 warns (-Wrestrict, a false positive) on "." + string.
  std::string name = ".";
  name.append(clean.stem().string()).append(".upframe-tmp").append(clean.extension().string());
  return clean.parent_path() / name;
}

}  // namespace upframe::media
