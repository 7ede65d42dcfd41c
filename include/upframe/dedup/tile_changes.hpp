// Tile reuse's decision (docs/INTERFACE.md, "Tile reuse"): which tiles of a unique frame
// changed. Each tile is compared over itself plus a halo of the network's receptive radius
// (everything its upscaled pixels depend on) with the source the upscaled pixels held for it
// were computed from: that tile's reference, which moves to the new frame only when the tile is
// computed again. So a slow fade or pan that changes every frame by less than the gate still
// recomputes a tile once the change since its reference passes the gate: the error does not
// accumulate. The gate is the duplicate confirmation (detector.hpp) on the two windows, its
// local measures scaled to the pair's own noise as for whole frames.
#pragma once

#include <cstdint>
#include <memory>

#include "upframe/dedup/detector.hpp"
#include "upframe/dedup/luma.hpp"
#include "upframe/tile_mask.hpp"

namespace upframe::dedup {

struct TileReuseOptions {
  int tile = 64;  // tile side, input pixels
  int halo = 0;   // the network's receptive radius, input pixels
  Thresholds thresholds = default_thresholds();
  // A tile also changed when its window's mean |difference| from its reference exceeds this
  // (8-bit levels; the smaller of it and thresholds.max_mean_abs_diff applies): the coding noise
  // a keyframe lays over the whole picture (about 1 level at crf 23) passes the frame gate, and
  // holding the older noise in every tile would cost more PSNR than the clip's own duplicates
  // do (measured in tests/pipeline/tile_reuse_test.cpp; docs/BENCHMARKS.md).
  double max_mean_abs_diff = 0.5;
  // When the windows that would compute the changed tiles cover more than this share of the
  // frame's area, every tile is computed (one whole-frame run is then no slower, and holds no
  // old pixels).
  double whole_frame_share = 0.7;
  int max_run_tiles = 8;  // reuse_windows(): the longest run of tiles one window computes
};

class TileChangeTracker {
 public:
  explicit TileChangeTracker(TileReuseOptions options);
  ~TileChangeTracker();
  // The tiles of the next unique frame to compute (1) or reuse (0), in decode order. Every
  // tile is computed for the first frame, after reset() and when the size changes. Computed
  // tiles take this frame as their reference (an 8-bit copy of their window).
  TileMask next(const LumaView& luma);
  // Forget every reference: the next frame computes every tile (a segment's first frame, or a
  // frame whose upscaled pixels this run does not hold).
  void reset();
  const TileReuseOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace upframe::dedup
