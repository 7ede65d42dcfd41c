// Colour conversion for the network on the device: 4:2:0 YUV planes in device memory (yuv420p,
// yuv420p10le, nv12, p010) to planar float RGB [0,1] (CHW, a device buffer) and back, with the
// per-pixel functions of device_colour_math.hpp, which are the CPU reference's constexpr formulas
// (upframe/upscale/colour.hpp) in colour.cpp's order of operations.
//
// Agreement with the CPU reference (frame_to_rgb / rgb_to_frame): the same formulas in the same
// order (bit-identical on the CPU: test_upscale ColourDeviceMath). A device compile may fuse a
// multiply and an add (nvcc's default --fmad=true), which moves a float by an ulp or two and,
// rarely, an output code by 1 level where the exact value sits at a rounding midpoint.
// Tolerance: RGB within 1e-6, codes within 1 level. Measured on the CPU with the same functions
// built with and without FMA contraction (g++ -mfma -ffp-contract=fast, 257x143 random frames,
// 8 and 10 bits, 5 matrices x 2 ranges x 3 sitings): 17 % of the floats differ, by at most
// 2.4e-7; 21 of 3.3 million codes differ, by 1 level. Built with --fmad=false the kernels should
// give the CPU's bits exactly (IEEE division, no reassociation); not measured on a GPU.
// Plain C++ header: host code includes it without nvcc.
#pragma once

#include <memory>

#include "upframe/upscale/colour_math.hpp"

namespace upframe::colour::cuda {

enum class DeviceYuvFormat { kYuv420p, kYuv420p10le, kNv12, kP010 };

// A decoded picture's sample layout, described without FFmpeg (the device-check kit describes
// NVDEC's surfaces with it too).
struct YuvLayout {
  int chroma_shift_x = 1, chroma_shift_y = 1;  // log2 of the chroma subsampling
  int bits = 8;                                // significant bits a sample
  int sample_bytes = 1;                        // 1 or 2
  bool high_bits = false;                      // the bits at the top of a 16-bit word (p010, p016)
  bool interleaved = false;                    // Cb, Cr pairs in one plane (nv12, p010, p016)
};

// The device format the colour kernels read for `layout`; false for anything else (4:2:2, 4:4:4,
// 12 or 16 bits, ...), which is converted on the host. A pure function: the decision whether a
// device frame takes the device path.
constexpr bool device_yuv_format_of(const YuvLayout& l, DeviceYuvFormat* out) {
  if (l.chroma_shift_x != 1 || l.chroma_shift_y != 1) return false;
  if (l.bits == 8 && l.sample_bytes == 1) {
    *out = l.interleaved ? DeviceYuvFormat::kNv12 : DeviceYuvFormat::kYuv420p;
    return true;
  }
  if (l.bits == 10 && l.sample_bytes == 2 && l.high_bits == l.interleaved) {
    *out = l.interleaved ? DeviceYuvFormat::kP010 : DeviceYuvFormat::kYuv420p10le;
    return true;
  }
  return false;
}

// One 4:2:0 picture in device memory. Planar formats use data[0..2] (Y, Cb, Cr); nv12 and p010
// use data[0] (Y) and data[1] (Cb, Cr pairs). Pitches in bytes.
struct DeviceYuvFrame {
  DeviceYuvFormat format = DeviceYuvFormat::kYuv420p;
  int width = 0;
  int height = 0;
  void* data[3] = {nullptr, nullptr, nullptr};
  int pitch[3] = {0, 0, 0};
};

// Kernels on one CUDA stream with their scratch memory (grown as needed). Calls queue work on
// the stream and return; synchronize() waits and reports a failure of the queued kernels.
// `params` comes from colour_params(frame.av()) (it resolves device frames too) and must give
// 4:2:0 chroma (factor 2 on both axes). Errors throw upframe::Error with stage "upscale".
// Not thread-safe: one per worker/stream.
class DeviceColour {
 public:
  explicit DeviceColour(void* stream = nullptr);  // a cudaStream_t; null: the default stream
  ~DeviceColour();
  DeviceColour(const DeviceColour&) = delete;
  DeviceColour& operator=(const DeviceColour&) = delete;

  // frame_to_rgb(): `rgb` (device) receives 3 x height x width floats, planes R, G, B.
  void yuv_to_rgb(const DeviceYuvFrame& yuv, const ColourParams& params, float* rgb);

  // rgb_to_frame()'s YUV part: `rgb` (device, 3 x height x width, values clamped to [0,1]) is
  // written into `yuv`'s planes (device, yuv's size and format) with the tent-filter chroma
  // downsampling and round-to-nearest codes of the CPU reference. Padding bits (p010's low 6)
  // are written as zeros.
  void rgb_to_yuv(const float* rgb, const DeviceYuvFrame& yuv, const ColourParams& params);

  void synchronize();

 private:
  struct Scratch;
  void* stream_ = nullptr;
  std::unique_ptr<Scratch> scratch_;
};

}  // namespace upframe::colour::cuda
