// Which video encoder an output uses, in which pixel format, opened with which options (the
// public choices, resolve_encoder() and its kin, are declared in upframe/media/frame_sink.hpp).
#pragma once

#include <string>

#include "media/libav_helpers.hpp"

namespace upframe::media {

// The pixel format `codec` encodes `source` frames in: the input's format when the encoder
// takes it, else the closest it does (depth and alpha kept where possible). A stream that was
// RGB or a palette (`stream_format`) goes to 4:2:0 for a delivery codec; ffv1 keeps 4:4:4
// and alpha.
AVPixelFormat encoder_pixel_format(const AVCodec* codec, AVPixelFormat source,
                                   AVPixelFormat stream_format = AV_PIX_FMT_NONE);

// The private options `encoder` is opened with (quality `crf`, speed, profile; x265's HDR
// parameters from the first frame `first`), for avcodec_open2 (the caller frees them).
AVDictionary* encoder_open_options(const std::string& encoder, int crf, AVPixelFormat pix_fmt,
                                   const AVFrame* first);

}  // namespace upframe::media
