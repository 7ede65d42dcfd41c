// The arrays of the reference files, made from the library's result types: one definition
// that upframe_device_refs (storing the CPU's results) and upframe_device_check (comparing the
// device's) both call, so the two sides cannot lay a result out differently. Plain C++ with the
// library's FFmpeg-free headers only.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "dedup/kernels.hpp"
#include "upframe/dedup/detector.hpp"
#include "upframe/dedup/hash.hpp"
#include "upframe/nn/tensor.hpp"

namespace upframe::device_check {

// The hash's words, then its unstable-bit words.
inline std::vector<int64_t> hash_values(const dedup::AverageHash& h) {
  std::vector<int64_t> v;
  for (uint64_t w : h.words) v.push_back(int64_t(w));
  for (uint64_t w : h.unstable) v.push_back(int64_t(w));
  return v;
}

inline std::vector<int64_t> difference_values(const dedup::detail::DifferenceSums& d) {
  return {int64_t(d.abs_sum), d.signed_sum, d.pixel_count, int64_t(d.max_block_abs_sum),
          d.max_block_area};
}

inline std::vector<int64_t> motion_values(const dedup::math::MotionSums& s) {
  return {s.gxx, s.gxy, s.gyy, s.gxd, s.gyd, s.dd};
}

// Every block's six sums, row-major.
inline std::vector<int64_t> block_values(const dedup::detail::MotionField& f) {
  std::vector<int64_t> v;
  for (const auto& b : f.blocks)
    for (int32_t x : {b.gxx, b.gxy, b.gyy, b.gxd, b.gyd, b.dd}) v.push_back(x);
  return v;
}

inline std::vector<double> measure_values(const dedup::DifferenceMeasures& m) {
  return {m.mean_abs_diff,  m.signed_mean_diff, m.max_block_mean_abs_diff,
          m.motion_shift_x, m.motion_shift_y,   m.motion_explained,
          m.motion,         m.local_motion,     m.zoom_motion};
}

// The h x w window at (x0, y0) of an rgb24 image `image_width` pixels wide, as the networks'
// input: planar RGB / 255.
inline nn::Tensor rgb8_to_tensor(const std::vector<uint8_t>& pixels, int image_width, int y0,
                                 int x0, int h, int w) {
  nn::Tensor t(3, h, w);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c)
        t.at(c, y, x) = pixels[(size_t(y0 + y) * image_width + x0 + x) * 3 + c] / 255.f;
  return t;
}

// Planar RGB clamped to [0,1], times 255, rounded, as rgb24: as the golden references were made.
inline std::vector<uint8_t> tensor_to_rgb8(const nn::Tensor& t) {
  std::vector<uint8_t> out(size_t(t.width) * t.height * 3);
  for (int y = 0; y < t.height; ++y)
    for (int x = 0; x < t.width; ++x)
      for (int c = 0; c < 3; ++c)
        out[(size_t(y) * t.width + x) * 3 + c] =
            uint8_t(std::lround(std::clamp(t.at(c, y, x), 0.f, 1.f) * 255.f));
  return out;
}

}  // namespace upframe::device_check
