// What one CUDA thread of the colour conversion computes (device_colour.cu), as plain C++ built
// from the constexpr reference functions of upframe/upscale/colour_math.hpp, in the same order of
// operations as src/upscale/colour.cpp. The kernels call these per pixel; tests/upscale runs
// them over whole frames on the CPU and requires frame_to_rgb()/rgb_to_frame()'s exact values,
// so the composition is checked where no GPU is present.
#pragma once

#include <cstddef>
#include <cstdint>

#include "upframe/upscale/colour_math.hpp"

#if defined(__CUDACC__)
#define UPFRAME_COLOUR_HD __host__ __device__
#else
#define UPFRAME_COLOUR_HD
#endif

namespace upframe::colour::device_math {

// A 4:2:0 YUV picture in memory (host or device): planar (yuv420p, yuv420p10le: planes 0, 1, 2)
// or semi-planar (nv12, p010: plane 1 holds Cb, Cr pairs). A code is
// (word >> shift) & (2^bits - 1) as av_read_image_line2 reads it, and written as code << shift.
struct YuvPlanes {
  int width = 0, height = 0;                // luma samples
  int chroma_width = 0, chroma_height = 0;  // ceil(width / 2), ceil(height / 2)
  int bits = 8;                             // 8 or 10
  int bytes = 1;                            // per sample word: 1 or 2
  int shift = 0;                            // 6 for P010 (10 bits in the high bits), else 0
  bool interleaved = false;                 // nv12, p010
  uint8_t* data[3] = {nullptr, nullptr, nullptr};
  ptrdiff_t pitch[3] = {0, 0, 0};  // bytes between rows
};

UPFRAME_COLOUR_HD inline int read_code(const YuvPlanes& p, int plane, int x, int y) {
  const uint8_t* row = p.data[plane] + static_cast<ptrdiff_t>(y) * p.pitch[plane];
  const int mask = (1 << p.bits) - 1;
  const int word = p.bytes == 1 ? row[x] : reinterpret_cast<const uint16_t*>(row)[x];
  return (word >> p.shift) & mask;
}

UPFRAME_COLOUR_HD inline void write_code(const YuvPlanes& p, int plane, int x, int y, int code) {
  uint8_t* row = p.data[plane] + static_cast<ptrdiff_t>(y) * p.pitch[plane];
  if (p.bytes == 1)
    row[x] = static_cast<uint8_t>(code << p.shift);
  else
    reinterpret_cast<uint16_t*>(row)[x] = static_cast<uint16_t>(code << p.shift);
}

// Chroma component 0 (Cb) or 1 (Cr) at chroma sample (i, j).
UPFRAME_COLOUR_HD inline int read_chroma(const YuvPlanes& p, int component, int i, int j) {
  return p.interleaved ? read_code(p, 1, 2 * i + component, j) : read_code(p, 1 + component, i, j);
}
UPFRAME_COLOUR_HD inline void write_chroma(const YuvPlanes& p, int component, int i, int j,
                                           int code) {
  if (p.interleaved)
    write_code(p, 1, 2 * i + component, j, code);
  else
    write_code(p, 1 + component, i, j, code);
}

// --- YUV -> RGB (frame_to_rgb) ---------------------------------------------------------------

// Bilinear chroma in codes, as colour.cpp's `sample`: horizontal on both rows, then vertical.
UPFRAME_COLOUR_HD inline float bilinear_chroma(const YuvPlanes& p, int component,
                                               const BilinearTap& tx, const BilinearTap& ty) {
  const int c00 = read_chroma(p, component, tx.i0, ty.i0);
  const int c10 = read_chroma(p, component, tx.i1, ty.i0);
  const int c01 = read_chroma(p, component, tx.i0, ty.i1);
  const int c11 = read_chroma(p, component, tx.i1, ty.i1);
  const float top = static_cast<float>(c00) + tx.w1 * static_cast<float>(c10 - c00);
  const float bottom = static_cast<float>(c01) + tx.w1 * static_cast<float>(c11 - c01);
  return top + ty.w1 * (bottom - top);
}

// RGB in [0,1] of luma sample (x, y).
UPFRAME_COLOUR_HD inline Rgb yuv_pixel_to_rgb(const YuvPlanes& p, const ColourParams& params, int x,
                                              int y) {
  const Quantisation q = quantisation(p.bits, params.full_range);  // luma and chroma alike
  const LumaCoefficients k = luma_coefficients(params.matrix);
  const BilinearTap tx = chroma_tap(x, params.chroma_x, p.chroma_width);
  const BilinearTap ty = chroma_tap(y, params.chroma_y, p.chroma_height);
  const Yuv yuv{luma_from_code(static_cast<float>(read_code(p, 0, x, y)), q),
                chroma_from_code(bilinear_chroma(p, 0, tx, ty), q),
                chroma_from_code(bilinear_chroma(p, 1, tx, ty), q)};
  const Rgb rgb = yuv_to_rgb(yuv, k);
  return {clamp01(rgb.r), clamp01(rgb.g), clamp01(rgb.b)};
}

// --- RGB -> YUV (rgb_to_frame) ---------------------------------------------------------------
// Three passes, as colour.cpp: per pixel (luma code, full-resolution Cb/Cr), a horizontal tent
// to chroma width on every row, a vertical tent to chroma height.

// Writes the luma code of pixel (x, y) and returns its full-resolution Yuv (cb, cr used).
UPFRAME_COLOUR_HD inline Yuv rgb_pixel_to_yuv(const YuvPlanes& p, const ColourParams& params, int x,
                                              int y, float r, float g, float b) {
  const Quantisation q = quantisation(p.bits, params.full_range);
  const Yuv yuv =
      rgb_to_yuv({clamp01(r), clamp01(g), clamp01(b)}, luma_coefficients(params.matrix));
  write_code(p, 0, x, y, code_from_luma(yuv.y, q));
  return yuv;
}

// The tent filter of chroma sample i along one axis over `samples[t * step]` (luma positions),
// with colour.cpp's TentTaps weights (each divided by the sample's own weight sum, summed in
// tap order) and its accumulation order.
UPFRAME_COLOUR_HD inline float tent_filter(const float* samples, ptrdiff_t step, int i,
                                           const ChromaAxis& axis, int luma_size) {
  const int first = tent_first(i, axis);
  const int last = tent_last(i, axis, luma_size);
  const int count = last - first + 1 > 0 ? last - first + 1 : 0;
  float weight_sum = 0;
  for (int t = 0; t < count; ++t) weight_sum += tent_weight(first + t, i, axis);
  float sum = 0;
  for (int t = 0; t < count; ++t)
    sum += (tent_weight(first + t, i, axis) / weight_sum) * samples[(first + t) * step];
  return sum;
}

}  // namespace upframe::colour::device_math
