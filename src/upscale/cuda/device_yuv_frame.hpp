// The FFmpeg side of the device colour conversion: a device frame's planes as a DeviceYuvFrame.
// Kept apart from device_colour.hpp so the CUDA-only device-check kit builds without FFmpeg.
#pragma once

#include "device_colour.hpp"
#include "upframe/frame.hpp"

namespace upframe::colour::cuda {

// The device format of a pixel format; false where it is none of the four.
bool device_yuv_format(AVPixelFormat format, DeviceYuvFormat* out);

// The planes of a device frame (AV_PIX_FMT_CUDA, e.g. from NVDEC) whose data format is one of
// the four; throws upframe::Error otherwise.
DeviceYuvFrame device_yuv_frame(const Frame& frame);

}  // namespace upframe::colour::cuda
