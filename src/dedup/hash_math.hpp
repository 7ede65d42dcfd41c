// The per-sample and per-cell arithmetic of duplicate detection, as small inline functions
// in plain C++ (no containers, no floating point) so that a CUDA kernel can include this
// header and reproduce the CPU decisions bit for bit (SPEC section 8).
#pragma once

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
