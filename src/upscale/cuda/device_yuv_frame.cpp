// The FFmpeg side of the device colour conversion (see device_yuv_frame.hpp).
#include "device_yuv_frame.hpp"

extern "C" {
#include <libavutil/pixdesc.h>
}

#include <string>

#include "upframe/error.hpp"

namespace upframe::colour::cuda {

namespace {

[[noreturn]] void fail(const std::string& problem) {
  throw Error({}, "CUDA colour conversion: " + problem, ExitCode::kProcessingFailed, "upscale");
}

}  // namespace

bool device_yuv_format(AVPixelFormat format, DeviceYuvFormat* out) {
  switch (format) {
    case AV_PIX_FMT_YUV420P:
      *out = DeviceYuvFormat::kYuv420p;
      return true;
    case AV_PIX_FMT_YUV420P10LE:
      *out = DeviceYuvFormat::kYuv420p10le;
      return true;
    case AV_PIX_FMT_NV12:
      *out = DeviceYuvFormat::kNv12;
      return true;
    case AV_PIX_FMT_P010LE:
      *out = DeviceYuvFormat::kP010;
      return true;
    default:
      return false;
  }
}

DeviceYuvFrame device_yuv_frame(const Frame& frame) {
  if (!frame || !frame.on_device()) fail("device_yuv_frame needs a device (CUDA) frame");
  DeviceYuvFrame out;
  if (!device_yuv_format(frame.data_format(), &out.format)) {
    const char* name = av_get_pix_fmt_name(frame.data_format());
    fail(std::string("device frames in ") + (name ? name : "unknown") +
         " are not converted on the device (yuv420p, yuv420p10le, nv12, p010 are)");
  }
  out.width = frame.width();
  out.height = frame.height();
  for (int i = 0; i < 3; ++i) {
    out.data[i] = frame.av()->data[i];
    out.pitch[i] = frame.av()->linesize[i];
  }
  return out;
}

}  // namespace upframe::colour::cuda
