// Row-oriented CPU kernels of duplicate detection (internal). Each kernel walks the rows
// once, with inner loops over fixed 16-sample chunks so GCC vectorises them at -O2; the
// per-sample and per-cell arithmetic is the one in hash_math.hpp.
#pragma once

#include <cstdint>
#include <vector>

#include "dedup/hash_math.hpp"
#include "upframe/dedup/detector.hpp"
#include "upframe/dedup/hash.hpp"
#include "upframe/dedup/luma.hpp"

namespace upframe::dedup::detail {

// Throws upframe::Error if the view cannot be read (null data, bad size or bit depth).
void validate(const LumaView& luma);

// Average hash of `luma`; if `copy_8bit` is not null, also writes the luma scaled to 8 bits
// there (width x height bytes, rows packed) in the same pass.
// Writes `luma` scaled to 8 bits into `out` (width x height bytes, rows packed).
void copy_to_8bit(const LumaView& luma, uint8_t* out);

// `luma_sum`, if not null, receives the sum of all samples scaled to 8 bits.
AverageHash hash_and_copy(const LumaView& luma, int hash_size, uint8_t* copy_8bit,
                          uint64_t* luma_sum = nullptr);

// The confirmation measures of two 8-bit planes of the same size (rows packed or with the
// given strides).
struct DifferenceSums {
  uint64_t abs_sum = 0;
  int64_t signed_sum = 0;
  int64_t pixel_count = 0;
  uint64_t max_block_abs_sum = 0;  // the block with the largest mean |a-b| ...
  int64_t max_block_area = 1;      // ... and its area
  DifferenceMeasures measures() const;
};
// `sum_a` / `sum_b`: the planes' sample sums where already known (from hash_and_copy),
// which saves reading them twice; null: computed here.
DifferenceSums difference_8bit(const uint8_t* a, int a_stride, const uint8_t* b, int b_stride,
                               int width, int height, const uint64_t* sum_a = nullptr,
                               const uint64_t* sum_b = nullptr);

}  // namespace upframe::dedup::detail

namespace upframe::dedup::detail {

// The motion sums (hash_math.hpp) of two 8-bit planes of the same size.
math::MotionSums motion_sums_8bit(const uint8_t* a, int a_stride, const uint8_t* b, int b_stride,
                                  int width, int height);

// The duplicate confirmation of the detector: the three difference measures, stopping as
// soon as one is certain to exceed its threshold (the sums only grow, so the decision is the
// one the full sums give), then the motion measure only if those three are within.
bool confirm_duplicate_8bit(const uint8_t* a, int a_stride, const uint8_t* b, int b_stride,
                            int width, int height, uint64_t sum_a, uint64_t sum_b,
                            const Thresholds& thresholds);

}  // namespace upframe::dedup::detail
