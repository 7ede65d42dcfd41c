// The per-sample and per-cell arithmetic of duplicate detection, as small inline functions
// in plain C++ (no containers; integers only, except the final motion_fit on the sums) so that
// a CUDA kernel can include this header and reproduce the CPU decisions bit for bit
// (docs/INTERFACE.md, "Equality").
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define UPFRAME_HD __host__ __device__
#else
#define UPFRAME_HD
#endif

namespace upframe::dedup::math {

// A luma sample scaled to 8 bits: 10-bit (or 12/16-bit) samples are shifted right.
UPFRAME_HD inline uint8_t sample_to_8bit(uint16_t sample, int bit_depth) {
  return static_cast<uint8_t>(sample >> (bit_depth - 8));
}

// Integer cell bounds: cell i of n over `extent` samples covers [begin(i), begin(i + 1)).
// Every sample belongs to exactly one cell, and cells differ in size by at most one.
UPFRAME_HD inline int cell_begin(int i, int extent, int n) {
  return static_cast<int>(static_cast<int64_t>(i) * extent / n);
}

// The average of a hash cell, rounded down, in 8-bit levels.
UPFRAME_HD inline uint32_t cell_average(uint64_t cell_sum, int64_t cell_area) {
  return static_cast<uint32_t>(cell_sum / static_cast<uint64_t>(cell_area));
}

// Hash bit of a cell: set when its average is above the mean of all cell averages, compared
// without division: average * cell_count > sum of averages.
UPFRAME_HD inline bool hash_bit(uint32_t average, uint64_t sum_of_averages, int cell_count) {
  return static_cast<uint64_t>(average) * static_cast<uint64_t>(cell_count) > sum_of_averages;
}

// A cell within `margin` levels of the mean may flip under coding noise: its bit is
// "unstable" and hamming_distance ignores it. Compared without division as well.
UPFRAME_HD inline bool hash_bit_unstable(uint32_t average, uint64_t sum_of_averages, int cell_count,
                                         uint32_t margin) {
  const int64_t scaled = static_cast<int64_t>(average) * cell_count;
  const int64_t offset = scaled - static_cast<int64_t>(sum_of_averages);
  return (offset < 0 ? -offset : offset) <= static_cast<int64_t>(margin) * cell_count;
}

// The average hash from the n x n cell sums (row-major, sums of 8-bit samples) of a width x
// height plane: sets bit k of `words` / `unstable` (n * n / 64 words, which the caller zeroed)
// as hash_bit / hash_bit_unstable say. The CPU hash and the CUDA hash both finish with this.
UPFRAME_HD inline void hash_from_cell_sums(const uint64_t* cell_sums, int width, int height, int n,
                                           uint32_t unstable_margin, uint64_t* words,
                                           uint64_t* unstable) {
  const int cell_count = n * n;
  const auto average = [&](int cell) {
    const int cx = cell % n, cy = cell / n;
    const int64_t rows = cell_begin(cy + 1, height, n) - cell_begin(cy, height, n);
    const int64_t cols = cell_begin(cx + 1, width, n) - cell_begin(cx, width, n);
    return cell_average(cell_sums[cell], rows * cols);
  };
  uint64_t sum_of_averages = 0;
  for (int cell = 0; cell < cell_count; ++cell) sum_of_averages += average(cell);
  for (int cell = 0; cell < cell_count; ++cell) {
    const uint32_t avg = average(cell);
    const uint64_t bit = uint64_t{1} << (cell % 64);
    if (hash_bit(avg, sum_of_averages, cell_count)) words[cell / 64] |= bit;
    if (hash_bit_unstable(avg, sum_of_averages, cell_count, unstable_margin))
      unstable[cell / 64] |= bit;
  }
}

UPFRAME_HD inline int popcount64(uint64_t word) {
#if defined(__CUDA_ARCH__)
  return __popcll(word);
#else
  return __builtin_popcountll(word);
#endif
}

// Signed difference of two 8-bit samples.
UPFRAME_HD inline int16_t signed_diff(uint8_t a, uint8_t b) {
  return static_cast<int16_t>(static_cast<int16_t>(a) - static_cast<int16_t>(b));
}

UPFRAME_HD inline uint16_t abs_diff(uint8_t a, uint8_t b) {
  return static_cast<uint16_t>(a > b ? a - b : b - a);
}

// Confirmation blocks: floor(extent / 8) blocks per axis (at least one) with integer
// bounds like the hash cells, so every block is at least 8x8 and exactly 8x8 when the size
// is a multiple of 8 (1920x1080): local changes are seen at that scale, the whole frame is
// covered, and no block is a noisy sliver.
UPFRAME_HD inline int block_count(int extent) { return extent >= 8 ? extent / 8 : 1; }

// Compares two block results as fractions sum/area without division: true if a > b.
UPFRAME_HD inline bool block_mean_greater(uint64_t sum_a, int64_t area_a, uint64_t sum_b,
                                          int64_t area_b) {
  return sum_a * static_cast<uint64_t>(area_b) > sum_b * static_cast<uint64_t>(area_a);
}

}  // namespace upframe::dedup::math

// --- Motion measure (the fourth confirmation measure) ---------------------------------------
// Coding noise and blur leave a difference d = b - a that is uncorrelated with the image's
// first derivative (blur is even, a translation odd); a pan, however slow, is d ~ -shift . grad.
// A least-squares fit of d on the Sobel gradients of m = a + b (Lucas-Kanade, one global
// translation) gives the shift and the fraction R^2 of d's energy it explains; the measure
// is |shift| * sqrt(R^2), in pixels: a shift only counts as far as it explains the difference.
// The sums are exact integers over the interior samples (1 <= x < W-1, 1 <= y < H-1), so any
// summation order (CPU rows, CUDA blocks) gives the same sums; only motion_fit uses doubles.
namespace upframe::dedup::math {

struct MotionSums {
  int64_t gxx = 0, gxy = 0, gyy = 0;  // gradient Gram matrix
  int64_t gxd = 0, gyd = 0;           // gradients against d = b - a
  int64_t dd = 0;                     // energy of d
  int64_t gmm = 0;                    // gx^2 + gy^2 where the sample changed (changed_sample)
};

// A sample whose |d| reaches this many levels changed: the local measure weighs the gradient
// of those samples only, so a still texture around a small mover does not dilute its
// displacement.
inline constexpr int kChangedSampleLevel = 4;
UPFRAME_HD inline bool changed_sample(int d) {
  return d >= kChangedSampleLevel || d <= -kChangedSampleLevel;
}

// Sobel gradients of m = a + b at a sample, from m at its 3x3 neighbourhood:
// m_rows[r][c] is m at (x + c - 1, y + r - 1). Each is within +-2040 (fits int16).
UPFRAME_HD inline int sobel_x(const int m[3][3]) {
  return (m[0][2] + 2 * m[1][2] + m[2][2]) - (m[0][0] + 2 * m[1][0] + m[2][0]);
}
UPFRAME_HD inline int sobel_y(const int m[3][3]) {
  return (m[2][0] + 2 * m[2][1] + m[2][2]) - (m[0][0] + 2 * m[0][1] + m[0][2]);
}

UPFRAME_HD inline void add_motion_sample(MotionSums& s, int gx, int gy, int d) {
  s.gxx += static_cast<int64_t>(gx) * gx;
  s.gxy += static_cast<int64_t>(gx) * gy;
  s.gyy += static_cast<int64_t>(gy) * gy;
  s.gxd += static_cast<int64_t>(gx) * d;
  s.gyd += static_cast<int64_t>(gy) * d;
  s.dd += static_cast<int64_t>(d) * d;
  if (changed_sample(d)) s.gmm += static_cast<int64_t>(gx) * gx + static_cast<int64_t>(gy) * gy;
}

// One confirmation block's motion sums: a block holds at most 15x15 interior samples, and
// |gx|, |gy| <= 2040, |d| <= 255, so each sum fits in 32 bits (225 * 2040^2 < 2^31, and
// gmm's 225 * 2 * 2040^2 < 2^31); half the
// memory of MotionSums, which matters for a 1080p frame's 32400 blocks.
struct BlockMotionSums {
  int32_t gxx = 0, gxy = 0, gyy = 0, gxd = 0, gyd = 0, dd = 0, gmm = 0;
};

UPFRAME_HD inline BlockMotionSums block_sums_of(const MotionSums& s) {
  BlockMotionSums b;
  b.gxx = static_cast<int32_t>(s.gxx);
  b.gxy = static_cast<int32_t>(s.gxy);
  b.gyy = static_cast<int32_t>(s.gyy);
  b.gxd = static_cast<int32_t>(s.gxd);
  b.gyd = static_cast<int32_t>(s.gyd);
  b.dd = static_cast<int32_t>(s.dd);
  b.gmm = static_cast<int32_t>(s.gmm);
  return b;
}

// Adds a frame part's or a block's sums (MotionSums or BlockMotionSums) to 64-bit sums.
template <class Sums>
UPFRAME_HD inline void add_motion_sums(MotionSums& into, const Sums& s) {
  into.gxx += s.gxx;
  into.gxy += s.gxy;
  into.gyy += s.gyy;
  into.gxd += s.gxd;
  into.gyd += s.gyd;
  into.dd += s.dd;
  into.gmm += s.gmm;
}

struct MotionFit {
  double shift_x = 0, shift_y = 0;  // pixels the picture moved from a to b
  double explained = 0;             // R^2: fraction of sum(d^2) the translation explains
  double score = 0;                 // |shift| * sqrt(R^2)
};

// The 2x2 solve. Host-side doubles (a CUDA port copies the sums back and calls this on the
// host, so no fused multiply-add changes the last bit).
inline MotionFit motion_fit(const MotionSums& s) {
  MotionFit fit;
  if (s.dd <= 0 || s.gxx + s.gyy <= 0) return fit;
  const double xx = static_cast<double>(s.gxx), xy = static_cast<double>(s.gxy),
               yy = static_cast<double>(s.gyy), xd = static_cast<double>(s.gxd),
               yd = static_cast<double>(s.gyd), dd = static_cast<double>(s.dd);
  double p = 0, q = 0;  // d ~ p * gx + q * gy
  const double det = xx * yy - xy * xy;
  if (det > 1e-9 * xx * yy) {
    p = (yy * xd - xy * yd) / det;
    q = (xx * yd - xy * xd) / det;
  } else if (xx >= yy) {  // gradients along one direction only: a one-parameter fit
    p = xd / xx;
  } else {
    q = yd / yy;
  }
  const double explained = p * xd + q * yd;
  fit.explained = explained > 0 ? (explained < dd ? explained / dd : 1.0) : 0.0;
  // m = a + b doubles the picture and Sobel weighs 4 rows x 2 samples: gx = 16 * d/dx of the
  // average picture, and b(x) = a(x - shift) gives d ~ -shift * d/dx, so shift = -16 * p.
  fit.shift_x = -16.0 * p;
  fit.shift_y = -16.0 * q;
  fit.score =
      std::sqrt(fit.shift_x * fit.shift_x + fit.shift_y * fit.shift_y) * std::sqrt(fit.explained);
  return fit;
}

}  // namespace upframe::dedup::math
