// NVDEC through the driver's Video Codec API, without FFmpeg (nvdec_decode.cpp).
#pragma once

#include <cstdint>
#include <vector>

namespace upframe::device_check {

// Decodes an H.264 (or, `hevc`, an HEVC) Annex B elementary stream on device 0 and returns
// its frames in display order, the display rectangle of each of NVDEC's planes, rows packed:
// 4:2:0 as NV12 (8-bit) or P016 (more bits, in the high bits of 16-bit words), luma rows then
// (h+1)/2 rows of (w+1)/2 interleaved CbCr pairs; 4:4:4 as three full planes (8 or 16 bits).
// Throws std::runtime_error naming the failing call (a missing driver library included);
// `unsupported` (optional) is set when the card's NVDEC does not decode the stream's format.
std::vector<uint8_t> nvdec_decode(const std::vector<uint8_t>& stream, bool hevc, int* frame_count,
                                  bool* unsupported = nullptr);

}  // namespace upframe::device_check
