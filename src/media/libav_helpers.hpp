// Internal helpers of the media stage: RAII owners for libav objects, pixel-format
// conversion with swscale, and a still-image encoder shared by write_image and the frames
// folder sink.
#pragma once

#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <string>

#include "upframe/frame.hpp"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libswscale/swscale.h>
}

namespace upframe::media {

struct InputContextCloser {
  void operator()(AVFormatContext* ctx) const { avformat_close_input(&ctx); }
};
using InputContextPtr = std::unique_ptr<AVFormatContext, InputContextCloser>;

struct CodecContextFreer {
  void operator()(AVCodecContext* ctx) const { avcodec_free_context(&ctx); }
};
using CodecContextPtr = std::unique_ptr<AVCodecContext, CodecContextFreer>;

struct CodecParametersFreer {
  void operator()(AVCodecParameters* par) const { avcodec_parameters_free(&par); }
};
using CodecParametersPtr = std::unique_ptr<AVCodecParameters, CodecParametersFreer>;

struct PacketFreer {
  void operator()(AVPacket* pkt) const { av_packet_free(&pkt); }
};
using PacketPtr = std::unique_ptr<AVPacket, PacketFreer>;

PacketPtr make_packet();

struct BufferRefUnref {
  void operator()(AVBufferRef* ref) const { av_buffer_unref(&ref); }
};
using BufferRefPtr = std::unique_ptr<AVBufferRef, BufferRefUnref>;

// Opens `path` for demuxing and reads the stream info. Throws upframe::Error (stage
// "decode") for a missing, unreadable or non-media file.
InputContextPtr open_input(const std::filesystem::path& path);

// Demuxers and parsers store what the file says in the colour fields of AVCodecParameters
// (H.264's chroma_sample_loc_type + 1 unchecked, for one): values outside the enums, which C++
// must not read as the enum type. These reset any out-of-range colour description (and field
// order) to "unspecified", reading the fields as plain ints.
void sanitize_colour_fields(AVCodecParameters* par);
void sanitize_colour_fields(AVFrame* frame);

// Converts frames to one pixel format (and optionally size) with swscale, reusing the
// scaler between calls. Colour matrix and range come from the frames' properties.
class PixelConverter {
 public:
  PixelConverter() = default;
  ~PixelConverter();
  PixelConverter(const PixelConverter&) = delete;
  PixelConverter& operator=(const PixelConverter&) = delete;

  // Returns `frame` itself when it already has `format`; otherwise a converted copy with
  // the same properties (pts, colour description, side data).
  Frame convert(const Frame& frame, AVPixelFormat format);

 private:
  SwsContext* sws_ = nullptr;
};

// The libavcodec encoder that writes still images of `format` ("png", "jpg"/"jpeg", "webp",
// "bmp", "tif"/"tiff"); empty when the format is unknown.
std::string image_encoder_name(const std::string& format);
// The pixel format `codec` should encode a `source` frame in: the same when the codec takes
// it, alpha and >8-bit depth kept where the codec can (PNG: rgb48be/rgba64be for deep
// sources), 4:2:0/4:2:2/4:4:4 full-range YUV for JPEG.
AVPixelFormat image_pixel_format(const AVCodec* codec, AVPixelFormat source);

// Encodes frames to standalone image files' bytes (one packet = one complete file). Frame
// threading may delay packets; packets come out in the order frames went in.
class ImageEncoder {
 public:
  // `path_for_errors` names the output in error messages.
  ImageEncoder(const std::string& encoder_name, int quality, int threads,
               std::string path_for_errors);
  // Queues `frame`; encoded packets come back through receive().
  void send(const Frame& frame);
  // Signals the end: remaining packets become available.
  void flush();
  // The bytes of the next finished image, if one is ready.
  bool receive(std::string& bytes);

 private:
  void open(const Frame& frame);
  const AVCodec* codec_;
  int quality_;
  int threads_;
  std::string path_;
  CodecContextPtr ctx_;
  PixelConverter converter_;
  PacketPtr packet_;
};

// Writes `bytes` to `path` (truncating). Throws upframe::Error naming the path.
void write_file(const std::filesystem::path& path, const std::string& bytes);

// `.NAME.upframe-tmp.EXT` beside `final_path`: where output is built before the final
// rename, so the final path never holds a partial result.
std::filesystem::path temporary_sibling(const std::filesystem::path& final_path);

}  // namespace upframe::media
