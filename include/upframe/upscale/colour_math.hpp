// The per-pixel colour maths of colour.hpp as constexpr functions with no FFmpeg types: the CPU
// reference (colour.cpp) and the CUDA kernels (src/upscale/cuda) call these very functions, and
// the CUDA-only device-check kit compiles them without FFmpeg. See colour.hpp for the decisions
// (matrix, range, siting) they implement.
#pragma once

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

}  // namespace upframe::colour
