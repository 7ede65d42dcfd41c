#pragma once

#include <cstdint>
#include <string>

extern "C" {
#include <libavutil/pixfmt.h>
#include <libavutil/rational.h>
}

namespace upframe {

// What the decoder knows about the input's video stream before the first frame.
struct VideoInfo {
  std::string path;
  std::string container;  // libavformat short name ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm")
  std::string codec;      // "h264", "hevc", ...
  int stream_index = -1;
  int width = 0;
  int height = 0;
  AVPixelFormat pixel_format = AV_PIX_FMT_NONE;  // of the decoded frames (host)
  // As the stream stores it (rgba, pal8...), when the decoder converts
  // (DecoderOptions::luma_frames).
  AVPixelFormat stream_pixel_format = AV_PIX_FMT_NONE;
  int bit_depth = 8;
  AVRational time_base{0, 1};       // of the input stream; frame pts are in it
  AVRational avg_frame_rate{0, 1};  // may be 0/1 when unknown
  AVRational sample_aspect_ratio{0, 1};
  int64_t frame_count = -1;  // -1: unknown before decoding
  double duration_seconds = 0;
  bool variable_frame_rate = false;  // best guess from the container (r_frame_rate != avg)
  AVColorPrimaries color_primaries = AVCOL_PRI_UNSPECIFIED;
  AVColorTransferCharacteristic color_trc = AVCOL_TRC_UNSPECIFIED;
  AVColorSpace colorspace = AVCOL_SPC_UNSPECIFIED;
  AVColorRange color_range = AVCOL_RANGE_UNSPECIFIED;
  AVChromaLocation chroma_location = AVCHROMA_LOC_UNSPECIFIED;
  int64_t bit_rate = 0;   // of the video stream, 0 if unknown
  bool is_image = false;  // a single still image (png, jpg, webp, ...)
  // The codec cannot code lossily (ffv1, png/apng, gif, rawvideo, utvideo...): the decoded
  // frames carry no coding noise, so a repeated picture decodes to the same samples.
  bool lossless_codec = false;
};

}  // namespace upframe
