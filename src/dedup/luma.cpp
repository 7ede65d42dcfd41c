#include "upframe/dedup/luma.hpp"

#include <string>

#include "upframe/error.hpp"
#include "upframe/frame.hpp"

extern "C" {
#include <libavutil/pixdesc.h>
}

namespace upframe::dedup {

namespace {

// Formats whose first plane is the luma, one sample per pixel: planar YUV, gray, NV12-like
// (luma plane then interleaved chroma) and P010-like. Little-endian only, as the hash reads
// samples as native uint16.
bool has_plain_luma_plane(const AVPixFmtDescriptor& desc) {
  if (desc.flags & (AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_PAL | AV_PIX_FMT_FLAG_BITSTREAM |
                    AV_PIX_FMT_FLAG_HWACCEL | AV_PIX_FMT_FLAG_BE | AV_PIX_FMT_FLAG_FLOAT |
                    AV_PIX_FMT_FLAG_BAYER))
    return false;
  if (!(desc.flags & AV_PIX_FMT_FLAG_PLANAR) && desc.nb_components > 2) return false;  // packed
  const AVComponentDescriptor& y = desc.comp[0];
  if (y.plane != 0 || y.offset != 0) return false;
  const int bytes = y.depth > 8 ? 2 : 1;
  return y.step == bytes && y.depth >= 8 && y.depth <= 16 && y.shift + y.depth <= 8 * bytes;
}

}  // namespace

LumaView luma_of(const Frame& frame) {
  if (!frame)
    throw Error({}, "duplicate detection got an empty frame", ExitCode::kProcessingFailed,
                "detect");
  if (frame.on_device())
    throw Error({}, "luma_of needs a host frame, got a device (CUDA) frame",
                ExitCode::kProcessingFailed, "detect");
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(frame.format());
  if (!desc || !has_plain_luma_plane(*desc)) {
    const char* name = desc ? desc->name : "unknown";
    throw Error(
        {}, std::string("duplicate detection needs a YUV or gray frame, got pixel format ") + name,
        ExitCode::kProcessingFailed, "detect");
  }
  const AVComponentDescriptor& y = desc->comp[0];
  LumaView view;
  view.data = frame.av()->data[0];
  view.linesize = frame.av()->linesize[0];
  view.width = frame.width();
  view.height = frame.height();
  // P010 keeps its 10 bits at the top of 16: read as 16-bit samples, >> 8 gives the same
  // 8-bit value as a 10-bit sample >> 2.
  view.bit_depth = y.depth + y.shift;
  return view;
}

}  // namespace upframe::dedup
