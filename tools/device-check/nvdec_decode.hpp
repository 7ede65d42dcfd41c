// NVDEC through the driver's Video Codec API, without FFmpeg (nvdec_decode.cpp).
#pragma once

#include <cstdint>
#include <vector>

namespace upframe::device_check {

// Decodes an H.264 (or, `hevc`, an HEVC) Annex B elementary stream on device 0 and returns
// its frames in display order, each as NVDEC's surface lays it out, rows packed: NV12 (8-bit)
// or P016 (more bits, in the high bits of 16-bit words), luma rows then interleaved CbCr rows.
// Throws std::runtime_error naming the failing call (a missing driver library included).
std::vector<uint8_t> nvdec_decode(const std::vector<uint8_t>& stream, bool hevc, int* frame_count);

}  // namespace upframe::device_check
