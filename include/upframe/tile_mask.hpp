// Tile reuse (docs/INTERFACE.md, "Tile reuse"): which tiles of a unique frame the network
// computes and which keep the previous unique frame's upscaled pixels, and the windows the
// computed tiles run in. Shared by the detect stage (it decides), the upscale stage (it runs the
// network on the computed tiles) and the save stage (it copies the reused ones:
// upframe/tile_copy.hpp). No FFmpeg here: the CUDA-only device-check kit runs the windows too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace upframe {

struct TileMask {
  int width = 0, height = 0;  // the frame, input pixels
  int tile = 0;               // tile side, input pixels (the last column / row may be smaller)
  int columns = 0, rows = 0;
  std::vector<uint8_t> changed;  // row-major, 1: computed, 0: reused

  TileMask() = default;
  // Every tile changed.
  TileMask(int frame_width, int frame_height, int tile_side);
  bool is_changed(int column, int row) const {
    return changed[static_cast<size_t>(row) * columns + column] != 0;
  }
  int changed_count() const;
  int tile_count() const { return columns * rows; }
  bool all_changed() const { return changed_count() == tile_count(); }
};

struct PixelRect {
  int x = 0, y = 0, w = 0, h = 0;
};
// Tile (column, row)'s own pixels (input pixels).
PixelRect tile_rect(const TileMask& mask, int column, int row);

// The pixels [start, start + size) of a window around [begin, begin + core) in [0, extent)
// carrying `margin` pixels of context each side where the image has them: core + 2*margin
// pixels (all of [0, extent) when that is no smaller), shifted inwards at the edges. With an
// `alignment` above 1 the start is a multiple of it and the window up to 2*(alignment-1) pixels
// wider to make up for it: a network that downsamples by that factor (a pixel unshuffle, a
// strided convolution) gives the whole image's pixels only in windows on its grid. Every window
// of one `core` and `extent` has the same size, so per-shape plans are built once.
struct WindowSpan {
  int start = 0, size = 0;
};
WindowSpan window_span(int begin, int core, int margin, int extent, int alignment);

// Pixels of context a computed tile's window carries beyond the receptive radius: the chroma
// downsampling of the output (a tent filter, upframe/upscale/colour.hpp) reads up to 2 output
// pixels across a tile's edge, which must be the network's full-frame result too.
inline constexpr int kReuseExtraMargin = 2;

// One network run for tile reuse: a horizontal run of changed tiles in one tile row (`core`),
// run on `window` (the core plus `margin` pixels of context on every side, shifted inwards at
// the frame's edges, so all windows of a run length have one shape and an executor that caches
// per-shape plans builds a few).
struct ReuseWindow {
  PixelRect core;
  PixelRect window;
};
// The windows that compute every changed tile of `mask`: each row's runs of changed tiles cut
// into runs of 8, 4, 2 or 1 tiles (at most `max_run_tiles`, at least 1), windows on the
// model's `alignment` grid (window_span).
std::vector<ReuseWindow> reuse_windows(const TileMask& mask, int margin, int max_run_tiles,
                                       int alignment = 1);
// Input pixels those windows cover, summed (the network's work, overlaps counted twice).
int64_t window_area(const std::vector<ReuseWindow>& windows);

}  // namespace upframe
