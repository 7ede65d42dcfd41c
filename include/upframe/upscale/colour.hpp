// Colour conversion at the neural network's boundary: a decoded frame (any planar, semi-planar
// or packed YUV/RGB/gray format up to 16 bits) to planar float RGB in [0,1], and back.
//
// This is THE reference: the CPU path calls frame_to_rgb()/rgb_to_frame(), and the per-pixel
// math lives below in constexpr functions so a CUDA kernel can use (and be tested against) the
// very same formulas.
//
// Decisions (the same ones FFmpeg/mpv make where there is a convention):
// - Matrix: the frame's colorspace (bt601 = bt470bg/smpte170m, bt709, bt2020nc, smpte240m, fcc;
//   bt2020c is converted with the bt2020nc matrix). Unspecified: bt601 below 720 lines, bt709
//   from 720 lines up. YCgCo and ICtCp are rejected.
// - Range: YUV is limited unless the frame says full (or the format is a yuvj one); gray is
//   full unless the frame says limited; RGB is always full.
// - Limited range at N bits: black 16<<(N-8), white 235<<(N-8), chroma 128<<(N-8) +- 112<<(N-8).
//   Full range: code / (2^N - 1), chroma centred on 2^(N-1).
// - Chroma upsampling is BILINEAR, honouring the frame's chroma siting (unspecified: "left",
//   i.e. co-sited horizontally and centred vertically, the MPEG-2/H.264 default; yuvj formats:
//   "center"). Chroma downsampling is the transpose of that (a tent filter around each chroma
//   sample's position), so a flat colour survives the round trip exactly.
// - Input RGB is clamped to [0,1] (limited-range super-white/black is cut), output codes are
//   rounded to nearest and clamped to the format's code range.
// - Alpha is not part of the tensor: rgb_to_frame() upscales the source frame's alpha plane
//   with swscale's bicubic filter to the new size (opaque if the source has none).
// - A frame was written with the matrix used: an unspecified colorspace/range is replaced by
//   the one resolved, so a player does not re-guess bt709 for an SD frame upscaled past 720p.
#pragma once

#include "upframe/frame.hpp"
#include "upframe/nn/tensor.hpp"

namespace upframe::colour {

enum class Matrix { kBt601, kBt709, kBt2020, kSmpte240m, kFcc };

struct LumaCoefficients {
  float kr;
  float kb;
};

constexpr LumaCoefficients luma_coefficients(Matrix matrix) {
  switch (matrix) {
    case Matrix::kBt709:
      return {0.2126f, 0.0722f};
    case Matrix::kBt2020:
      return {0.2627f, 0.0593f};
    case Matrix::kSmpte240m:
      return {0.212f, 0.087f};
    case Matrix::kFcc:
      return {0.30f, 0.11f};
    case Matrix::kBt601:
    default:
      return {0.299f, 0.114f};
  }
}

// Integer codes of one bit depth and range <-> normalised values (luma/RGB in [0,1], chroma in
// [-0.5,0.5]).
struct Quantisation {
  float luma_offset;    // code of black
  float luma_scale;     // codes from black to white
  float chroma_offset;  // code of zero chroma
  float chroma_scale;   // codes from chroma -0.5 to +0.5
  int max_code;         // 2^bits - 1
};

constexpr Quantisation quantisation(int bits, bool full_range) {
  const int max_code = (1 << bits) - 1;
  const float step = float(1 << (bits - 8));  // 1 at 8 bits, 4 at 10 bits...
  if (full_range) return {0.0f, float(max_code), float(1 << (bits - 1)), float(max_code), max_code};
  return {16.0f * step, 219.0f * step, 128.0f * step, 224.0f * step, max_code};
}

struct Rgb {
  float r, g, b;
};
struct Yuv {
  float y, cb, cr;  // y in [0,1], cb/cr in [-0.5,0.5]
};

constexpr float clamp01(float v) { return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v); }

constexpr Rgb yuv_to_rgb(Yuv yuv, LumaCoefficients k) {
  const float kg = 1.0f - k.kr - k.kb;
  const float r = yuv.y + 2.0f * (1.0f - k.kr) * yuv.cr;
  const float b = yuv.y + 2.0f * (1.0f - k.kb) * yuv.cb;
  const float g = (yuv.y - k.kr * r - k.kb * b) / kg;
  return {r, g, b};
}

constexpr Yuv rgb_to_yuv(Rgb rgb, LumaCoefficients k) {
  const float kg = 1.0f - k.kr - k.kb;
  const float y = k.kr * rgb.r + kg * rgb.g + k.kb * rgb.b;
  return {y, (rgb.b - y) / (2.0f * (1.0f - k.kb)), (rgb.r - y) / (2.0f * (1.0f - k.kr))};
}

constexpr float luma_from_code(float code, const Quantisation& q) {
  return (code - q.luma_offset) / q.luma_scale;
}
constexpr float chroma_from_code(float code, const Quantisation& q) {
  return (code - q.chroma_offset) / q.chroma_scale;
}

// Rounds to nearest and clamps to [0, max_code].
constexpr int round_clamp(float code, int max_code) {
  if (!(code > 0.0f)) return 0;  // also maps NaN to 0
  if (code >= float(max_code)) return max_code;
  return int(code + 0.5f);
}
constexpr int code_from_luma(float y, const Quantisation& q) {
  return round_clamp(q.luma_offset + y * q.luma_scale, q.max_code);
}
constexpr int code_from_chroma(float c, const Quantisation& q) {
  return round_clamp(q.chroma_offset + c * q.chroma_scale, q.max_code);
}
// RGB and alpha: full range, [0,1] -> [0, max_code].
constexpr int code_from_unit(float v, int max_code) {
  return round_clamp(v * float(max_code), max_code);
}

// Chroma siting along one axis, as the luma position of chroma sample i: factor*i + offset
// (offset 0: co-sited with the first luma sample; (factor-1)/2: centred; factor-1: "bottom").
struct ChromaAxis {
  int factor = 1;       // 1, 2 or 4 luma samples per chroma sample
  float offset = 0.0f;  // in luma samples
};

// Bilinear upsampling: the two chroma samples (i0, i1) and the weight of i1 for luma position x.
struct BilinearTap {
  int i0;
  int i1;
  float w1;
};
constexpr BilinearTap chroma_tap(int x, const ChromaAxis& axis, int chroma_size) {
  if (axis.factor == 1) return {x, x, 0.0f};
  const float pos = (float(x) - axis.offset) / float(axis.factor);
  if (pos <= 0.0f) return {0, 0, 0.0f};
  const int i0 = int(pos);
  if (i0 >= chroma_size - 1) return {chroma_size - 1, chroma_size - 1, 0.0f};
  return {i0, i0 + 1, pos - float(i0)};
}

// Tent weight of luma position x for chroma sample i (the transpose of chroma_tap).
constexpr float tent_weight(int x, int i, const ChromaAxis& axis) {
  const float d = float(x) - (float(axis.factor) * float(i) + axis.offset);
  const float ad = d < 0.0f ? -d : d;
  return ad < float(axis.factor) ? float(axis.factor) - ad : 0.0f;
}

// Luma positions [first, last] that touch chroma sample i, clamped to the image.
constexpr int tent_first(int i, const ChromaAxis& axis) {
  const int first = int(float(axis.factor) * float(i) + axis.offset) - axis.factor + 1;
  return first < 0 ? 0 : first;
}
constexpr int tent_last(int i, const ChromaAxis& axis, int luma_size) {
  const int last = int(float(axis.factor) * float(i) + axis.offset + float(axis.factor));
  return last > luma_size - 1 ? luma_size - 1 : last;
}

// Everything needed to convert one frame, with unspecified values resolved.
struct ColourParams {
  Matrix matrix = Matrix::kBt601;
  bool full_range = false;
  ChromaAxis chroma_x;
  ChromaAxis chroma_y;
};

// Resolves matrix, range and chroma siting of `frame` as described at the top. Throws
// upframe::Error for a matrix it cannot convert (YCgCo, ICtCp, ...).
ColourParams colour_params(const AVFrame* frame);

// Records the resolved matrix and range in `frame` (a YUV or gray one) where they were
// unspecified.
void tag_resolved_colour(AVFrame* frame, const ColourParams& params);

// True for the pixel formats frame_to_rgb/rgb_to_frame read and write directly (host memory,
// integer components up to 16 bits, no palette or bitstream packing).
bool is_supported_format(AVPixelFormat format);
// The pixel format rgb_to_frame writes for an input in `format`: the same one where supported,
// rgba for pal8, gray for the 1-bit formats (those are converted on the way in).
AVPixelFormat output_format_for(AVPixelFormat format);

// Frame -> planar float RGB [0,1], 3 x height x width. A device frame is copied to the host
// first. Throws upframe::Error for an unsupported pixel format or matrix.
nn::Tensor frame_to_rgb(const Frame& frame);

// Planar float RGB -> a new frame of the tensor's size in output_format_for(like's format),
// with like's matrix, range, siting, timestamps and side data (av_frame_copy_props), and like's
// alpha plane (if any) upscaled with bicubic swscale to the new size.
Frame rgb_to_frame(const nn::Tensor& rgb, const Frame& like);

}  // namespace upframe::colour
