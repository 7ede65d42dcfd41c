// Still images through the same demuxer/decoder as video, and libavcodec's image encoders.
#include "upframe/media/image_io.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <vector>

// libjpeg after <cstdio>: its header uses FILE without including it.
#include <jpeglib.h>

#include "media/libav_helpers.hpp"
#include "media/webp_animation.hpp"
#include "upframe/error.hpp"
#include "upframe/media/decoder.hpp"

extern "C" {
#include <libavutil/pixdesc.h>
}

namespace upframe {

using namespace media;
namespace fs = std::filesystem;

bool is_animated_image(const fs::path& path) { return is_apng(path) || is_animated_webp(path); }

namespace {

bool is_jpeg(const std::string& format) { return image_encoder_name(format) == "mjpeg"; }

// A grey picture without alpha: FFmpeg's mjpeg encoder writes colour (YUV) only, so such a
// picture goes to libjpeg as one grey component.
bool is_plain_gray(AVPixelFormat format) {
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(format);
  return desc && desc->nb_components == 1 && !(desc->flags & AV_PIX_FMT_FLAG_PAL);
}

// libjpeg reports an error by calling error_exit, which must not return: it jumps back to
// encode_gray_jpeg with the message (only libjpeg's C frames lie in between).
struct JpegErrors {
  jpeg_error_mgr manager{};
  std::jmp_buf jump{};
  char message[JMSG_LENGTH_MAX] = {};
};

void jump_on_error(j_common_ptr info) {
  auto* errors = reinterpret_cast<JpegErrors*>(info->err);
  (*info->err->format_message)(info, errors->message);
  std::longjmp(errors->jump, 1);
}

// A grey JPEG of `frame` (8 bits), at libjpeg's quality scale (1..100).
std::string encode_gray_jpeg(const Frame& frame, int quality, const std::string& name) {
  PixelConverter converter;
  const Frame gray = converter.convert(frame.to_host(), AV_PIX_FMT_GRAY8);
  const AVFrame* av = gray.av();
  jpeg_compress_struct jpeg{};
  JpegErrors errors;
  jpeg.err = jpeg_std_error(&errors.manager);
  errors.manager.error_exit = jump_on_error;
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  if (setjmp(errors.jump)) {
    jpeg_destroy_compress(&jpeg);
    std::free(buffer);
    throw Error(name, std::string("cannot encode the grey JPEG: ") + errors.message,
                ExitCode::kProcessingFailed, "save");
  }
  jpeg_create_compress(&jpeg);
  jpeg_mem_dest(&jpeg, &buffer, &size);
  jpeg.image_width = static_cast<JDIMENSION>(av->width);
  jpeg.image_height = static_cast<JDIMENSION>(av->height);
  jpeg.input_components = 1;
  jpeg.in_color_space = JCS_GRAYSCALE;
  jpeg_set_defaults(&jpeg);
  jpeg_set_quality(&jpeg, std::clamp(quality, 1, 100), TRUE);
  jpeg_start_compress(&jpeg, TRUE);
  while (jpeg.next_scanline < jpeg.image_height) {
    JSAMPROW row = av->data[0] + size_t(jpeg.next_scanline) * size_t(av->linesize[0]);
    jpeg_write_scanlines(&jpeg, &row, 1);
  }
  jpeg_finish_compress(&jpeg);
  jpeg_destroy_compress(&jpeg);
  std::string bytes(reinterpret_cast<const char*>(buffer), size);
  std::free(buffer);
  return bytes;
}

bool has_alpha(AVPixelFormat format) {
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(format);
  return desc && (desc->flags & AV_PIX_FMT_FLAG_ALPHA);
}

// One warning for each thing `format` cannot keep of a `source` picture: its alpha channel,
// its bit depth.
void warn_about_losses(AVPixelFormat source, const std::string& format, const std::string& name) {
  const AVCodec* codec = avcodec_find_encoder_by_name(image_encoder_name(format).c_str());
  if (!codec) return;
  const AVPixelFormat target = is_jpeg(format) && is_plain_gray(source)
                                   ? AV_PIX_FMT_GRAY8
                                   : image_pixel_format(codec, source);
  std::string shown = format;
  if (shown.starts_with(".")) shown.erase(0, 1);
  if (has_alpha(source) && !has_alpha(target))
    spdlog::warn("{}: alpha channel dropped: {} cannot hold transparency", name, shown);
  const int depth = pixel_format_bit_depth(source);
  if (depth > pixel_format_bit_depth(target))
    spdlog::warn("{}: reduced from {} to {} bits per channel: {} holds no more", name, depth,
                 pixel_format_bit_depth(target), shown);
}

}  // namespace

Frame read_image(const fs::path& path) {
  DecoderOptions options;
  options.threads = 1;  // one picture: frame threads would only add latency
  VideoDecoder decoder(path, options);
  std::optional<Frame> frame = decoder.next();
  if (!frame)
    throw Error(path.string(), "no image in the file", ExitCode::kProcessingFailed, "decode");
  return *frame;
}

std::string encode_image(const Frame& frame, const std::string& format, int quality,
                         const std::string& name) {
  const std::string encoder_name = image_encoder_name(format);
  if (encoder_name.empty())
    throw UsageError(name, "unknown image format '" + format + "' (png, jpg, webp, bmp, tiff)");
  if (is_jpeg(format) && is_plain_gray(frame.data_format()))
    return encode_gray_jpeg(frame, quality, name);
  ImageEncoder encoder(encoder_name, quality, 1, name);
  encoder.send(frame);
  encoder.flush();
  std::string bytes;
  if (!encoder.receive(bytes))
    throw Error(name, "the encoder produced no image", ExitCode::kProcessingFailed, "save");
  return bytes;
}

void write_image(const fs::path& path, const Frame& frame, const std::string& format, int quality) {
  const std::string chosen = format.empty() ? path.extension().string() : format;
  warn_about_losses(frame.data_format(), chosen, path.string());
  const std::string bytes = encode_image(frame, chosen, quality, path.string());
  // Written under a temporary name so the final path never holds a partial image.
  const fs::path temporary = temporary_sibling(path);
  try {
    write_file(temporary, bytes);
  } catch (...) {
    std::error_code ec;
    fs::remove(temporary, ec);
    throw;
  }
  std::error_code ec;
  fs::rename(temporary, path, ec);
  if (ec) {
    fs::remove(temporary, ec);
    throw Error(path.string(), "cannot write the image: " + ec.message(),
                ExitCode::kProcessingFailed, "save");
  }
}

}  // namespace upframe
