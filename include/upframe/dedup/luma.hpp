// A read-only view of a frame's luma plane. Integer arithmetic only from here on, so the CPU
// and CUDA duplicate decisions are bit-identical (docs/INTERFACE.md).
#pragma once

#include <cstdint>

namespace upframe {
// upframe/frame.hpp (FFmpeg's AVFrame): only the functions taking a Frame need it, so the
// CUDA-only device-check kit can use the views and the detection maths without FFmpeg.
class Frame;
}  // namespace upframe

namespace upframe::dedup {

struct LumaView {
  const uint8_t* data = nullptr;  // first byte of row 0
  int linesize = 0;               // bytes between rows
  int width = 0;
  int height = 0;
  int bit_depth = 8;  // 8: one byte a sample; >8: little-endian uint16 samples
};

// The luma (first) plane of a host frame in a planar YUV/gray/NV12/P010 format.
LumaView luma_of(const Frame& frame);

}  // namespace upframe::dedup
