// device_luma_of(): the part of the device detector that reads FFmpeg's frame descriptors. Kept
// out of device_dedup.cu so the CUDA-only device-check kit compiles the kernels without FFmpeg.
extern "C" {
#include <libavutil/pixdesc.h>
}

#include <string>

#include "device_dedup.hpp"
#include "upframe/error.hpp"
#include "upframe/frame.hpp"

namespace upframe::dedup::cuda {

LumaView device_luma_of(const Frame& frame) {
  const auto fail = [](const std::string& problem) {
    throw Error({}, "CUDA duplicate detection: " + problem, ExitCode::kProcessingFailed, "detect");
  };
  if (!frame || !frame.on_device()) fail("device_luma_of needs a device (CUDA) frame");
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(frame.data_format());
  const bool plain =
      desc &&
      !(desc->flags & (AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_PAL | AV_PIX_FMT_FLAG_BITSTREAM |
                       AV_PIX_FMT_FLAG_HWACCEL | AV_PIX_FMT_FLAG_BE | AV_PIX_FMT_FLAG_FLOAT)) &&
      desc->comp[0].plane == 0 && desc->comp[0].offset == 0 && desc->comp[0].depth >= 8 &&
      desc->comp[0].step == (desc->comp[0].depth + desc->comp[0].shift > 8 ? 2 : 1);
  if (!plain)
    fail(std::string("device frames in ") + (desc ? desc->name : "an unknown format") +
         " have no luma plane the detector reads");
  LumaView view;
  view.data = frame.av()->data[0];
  view.linesize = frame.av()->linesize[0];
  view.width = frame.width();
  view.height = frame.height();
  view.bit_depth = desc->comp[0].depth + desc->comp[0].shift;  // P010: 16, >> 8 as on the host
  return view;
}

}  // namespace upframe::dedup::cuda
