// Row-oriented CPU kernels of duplicate detection (internal). Each kernel walks the rows
// once, with inner loops over fixed 16-sample chunks so GCC vectorises them at -O2; the
// per-sample and per-cell arithmetic is the one in hash_math.hpp.
#pragma once

#include <cstdint>
#include <vector>

#include "hash_math.hpp"  // same folder: also found from the CUDA tests, which lack src/
#include "upframe/dedup/detector.hpp"
#include "upframe/dedup/hash.hpp"
#include "upframe/dedup/luma.hpp"

namespace upframe::dedup::detail {

// Throws upframe::Error if the view cannot be read (null data, bad size or bit depth).
void validate(const LumaView& luma);

// Also throws for a hash size other than 8, 16 or 32, or a plane smaller than the hash.
void validate_hash_request(const LumaView& luma, int hash_size);

// Writes `luma` scaled to 8 bits into `out` (width x height bytes, rows packed).
void copy_to_8bit(const LumaView& luma, uint8_t* out);

// Average hash of `luma`; if `copy_8bit` is not null, also writes the luma scaled to 8 bits
// there (width x height bytes, rows packed) in the same pass.
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

// The motion sums (hash_math.hpp) of two 8-bit planes of the same size, per confirmation
// block (block_count / cell_begin bounds, as the difference blocks) and in total. Each block's
// sums cover its interior samples (1 <= x < W-1, 1 <= y < H-1), so the total is the frame's.
struct MotionField {
  int blocks_x = 0, blocks_y = 0;
  std::vector<math::BlockMotionSums> blocks;  // row-major
  math::MotionSums total;
};
void motion_field_8bit(const uint8_t* a, int a_stride, const uint8_t* b, int b_stride, int width,
                       int height, MotionField& field);
// The field's total only.
math::MotionSums motion_sums_8bit(const uint8_t* a, int a_stride, const uint8_t* b, int b_stride,
                                  int width, int height);

// The pair's noise floor for the local measure: a window counts when its change energy per
// block exceeds this many times the median window's (or min_rms^2); 8 = (2.83 x RMS)^2.
inline constexpr double kLocalNoiseFactor = 8.0;

// Local motion (docs/DEDUP.md): over windows of 2x2 confirmation blocks (16x16 samples, a
// step of 8) whose change energy per block, as RMS, exceeds max(min_rms, the pair's floor),
// the largest displacement (pixels) a translation of the window explains: fitted over the
// window's blocks that hold at least 1/8 of its change, against the gradient energy of their
// changed samples (math::changed_sample). A small object or particles moving a pixel give
// about 1, also over a textured ground; re-coding noise, even at strong edges, stays under 0.75.
// Host doubles from the integer sums: the CPU and CUDA fields give the same value.
double local_motion(const MotionField& field, int width, int height, double min_rms);

// Zoom (docs/DEDUP.md): a fit of d to a translation plus a zoom about the frame's centre from
// the blocks' sums (each block's samples taken at its centre); the zoom's displacement at the
// frame's RMS radius (pixels) times sqrt(the fraction of sum(d^2) the zoom explains beyond the
// translation alone). A slow push-in moves no part of the frame far enough for the other
// measures, but every part of it radially.
double zoom_motion(const MotionField& field, int width, int height);

// A block's change is masked (coding noise at the picture's edges) unless 256 sum(d^2) is at
// least this many times its gradient energy sum(gx^2 + gy^2): a thin line appearing on flat
// ground gives about 8, a 1-px translation 1, re-coding noise at edges far less.
inline constexpr int64_t kUnmaskedChangeRatio = 2;

// Faint thin changes (docs/DEDUP.md): blocks whose change energy per sample exceeds
// max(min_rms^2, the pair's floor: kLocalNoiseFactor x the median block's) and is unmasked;
// the longest bounding-box side (pixels) of an 8-connected group of them. A rain streak
// 50 px or longer gives its length; re-coding noise on held frames stays in groups of 1 to 3
// blocks. Host doubles from the integer sums: the CPU and CUDA fields give the same value.
double change_length(const MotionField& field, int width, int height, double min_rms);

// The confirmation's decision, one step per measure; the CPU detector and the CUDA path
// (src/dedup/cuda) both decide with these, so equal sums give equal decisions.
// Step 1, |signed mean| from the planes' sample sums (the hash pass gives them).
bool signed_mean_within(uint64_t sum_a, uint64_t sum_b, int64_t pixel_count,
                        const Thresholds& thresholds);
// Step 2, mean |a-b| and the largest block mean. The sums may be partial (a pass stopped early):
// sums only grow, so partial sums over a limit give the full sums' answer.
bool differences_within(const DifferenceSums& sums, const Thresholds& thresholds);
// Step 3, the global motion measure (math::motion_fit, host doubles) and the local one.
bool motion_within(const MotionField& field, int width, int height, const Thresholds& thresholds);

// The three steps in order; `difference()` returns DifferenceSums and `motion()` the
// MotionField of the kept frame a and the new frame b, each called only if the steps before
// accepted.
template <class DifferencePass, class MotionPass>
bool confirm_duplicate(uint64_t sum_a, uint64_t sum_b, int width, int height,
                       const Thresholds& thresholds, DifferencePass&& difference,
                       MotionPass&& motion) {
  if (!signed_mean_within(sum_a, sum_b, static_cast<int64_t>(width) * height, thresholds))
    return false;
  if (!differences_within(difference(), thresholds)) return false;
  return motion_within(motion(), width, height, thresholds);
}

// All measures of measure_difference() from the full sums (the local measure with the
// thresholds' min_rms).
DifferenceMeasures measures_from_sums(const DifferenceSums& difference, const MotionField& motion,
                                      int width, int height, const Thresholds& thresholds);

// The duplicate confirmation of the detector: the three difference measures, stopping as
// soon as one is certain to exceed its threshold (the sums only grow, so the decision is the
// one the full sums give), then the motion measure only if those three are within.
bool confirm_duplicate_8bit(const uint8_t* a, int a_stride, const uint8_t* b, int b_stride,
                            int width, int height, uint64_t sum_a, uint64_t sum_b,
                            const Thresholds& thresholds);

}  // namespace upframe::dedup::detail
