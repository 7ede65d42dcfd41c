// Duplicate detection: a hash match is only a candidate, confirmed by a difference check on
// the luma (docs/INTERFACE.md). Frames are fed in decode order.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "upframe/dedup/hash.hpp"
#include "upframe/dedup/luma.hpp"

namespace upframe::dedup {

enum class Scope { kConsecutive, kGlobal };

struct Thresholds {
  // Defaults chosen on the clips the tests generate; see docs/DEDUP.md.
  double max_mean_abs_diff = 0;         // frame-wide mean |a-b| in 8-bit levels
  double max_abs_signed_mean_diff = 0;  // |mean(a-b)|: a fade shifts it, codec noise does not
  double max_block_mean_abs_diff = 0;   // largest 8x8-block mean |a-b|: local changes
  // |shift| * sqrt(R^2) of a global translation fitted to the difference, in pixels: a slow
  // pan (even sub-pixel, even after lossy coding) is a translation, coding noise is not.
  double max_motion = 0;
  // Local motion: the largest displacement (pixels) a translation explains in a 16x16 window
  // whose change, gathered in one 8x8 block, has an RMS above local_motion_min_rms (levels)
  // and the pair's own noise floor: a small object or particles moving while the rest of the
  // frame stands still (weighed by the gradient of the samples that changed, so a still
  // texture around them does not hide them).
  double max_local_motion = 0;
  // Zoom: a push-in or pull-out about the centre, |zoom| x RMS radius x sqrt(R^2 gained), px.
  double max_zoom_motion = 0;
  double local_motion_min_rms = 0;
  // Faint thin changes (a rain streak appearing, moving or vanishing): the longest side, in
  // pixels, of a connected run of 8x8 blocks whose change is above change_min_rms (levels RMS)
  // and the pair's noise floor, and not masked by the picture's own edges there.
  double max_change_length = 0;
  double change_min_rms = 0;
};
Thresholds default_thresholds();
// All zero: only a luma equal to the kept frame's confirms (sources without coding noise).
Thresholds exact_thresholds();

struct DifferenceMeasures {
  double mean_abs_diff = 0;
  double signed_mean_diff = 0;
  double max_block_mean_abs_diff = 0;
  // Motion: the least-squares translation from a to b (pixels; +x right, +y down), the
  // fraction of sum((b-a)^2) it explains, and the measure |shift| * sqrt(explained).
  double motion_shift_x = 0;
  double motion_shift_y = 0;
  double motion_explained = 0;
  double motion = 0;
  // The local motion measure (Thresholds::max_local_motion), with the default min_rms.
  double local_motion = 0;
  double zoom_motion = 0;  // Thresholds::max_zoom_motion
  // Thresholds::max_change_length, with the default change_min_rms (pixels).
  double change_length = 0;
};
// Both views must have the same size; samples are compared scaled to 8 bits.
DifferenceMeasures measure_difference(const LumaView& a, const LumaView& b);

struct DetectorOptions {
  int hash_size = 8;
  int hash_threshold = 0;  // Hamming distance counted as a hash match
  Scope scope = Scope::kConsecutive;
  int window = 32;  // global scope: compare with the last `window` unique frames
  Thresholds thresholds = default_thresholds();
};

struct Decision {
  bool duplicate = false;
  int64_t source_index = -1;  // the unique frame it repeats (when duplicate)
};

class DuplicateDetector {
 public:
  explicit DuplicateDetector(DetectorOptions options);
  ~DuplicateDetector();
  // Classifies frame `index` (strictly increasing). A unique frame's luma is kept for later
  // confirmations, within the window: an 8-bit frame by reference (no copy), other depths as
  // an 8-bit copy. Prefer this overload.
  Decision classify(int64_t index, const Frame& frame);
  // Same for a plane the caller owns: a unique frame's luma is copied (8 bits).
  Decision classify(int64_t index, const LumaView& luma);
  // Forget everything: the next frame is unique (start of a segment).
  void reset();
  // Counters for the stats/logs.
  int64_t hash_candidates() const;
  int64_t rejected_by_confirmation() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace upframe::dedup
