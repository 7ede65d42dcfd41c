#include "upframe/tile_mask.hpp"

#include <algorithm>
#include <string>

#include "upframe/error.hpp"

namespace upframe {

TileMask::TileMask(int frame_width, int frame_height, int tile_side)
    : width(frame_width), height(frame_height), tile(tile_side) {
  if (frame_width <= 0 || frame_height <= 0 || tile_side <= 0)
    throw Error({}, "tile reuse needs a frame and a tile size, got a " +
                        std::to_string(frame_width) + "x" + std::to_string(frame_height) +
                        " frame in tiles of " + std::to_string(tile_side));
  columns = (width + tile - 1) / tile;
  rows = (height + tile - 1) / tile;
  changed.assign(static_cast<size_t>(columns) * rows, 1);
}

int TileMask::changed_count() const {
  return static_cast<int>(std::count(changed.begin(), changed.end(), uint8_t{1}));
}

PixelRect tile_rect(const TileMask& mask, int column, int row) {
  const int x = column * mask.tile, y = row * mask.tile;
  return {x, y, std::min(mask.tile, mask.width - x), std::min(mask.tile, mask.height - y)};
}

WindowSpan window_span(int begin, int core, int margin, int extent, int alignment) {
  const int grid = std::max(1, alignment);
  // grid - 1 more pixels to floor the start onto the grid; then widened until extent - size,
  // the start of a window shifted against the far edge, is on the grid too.
  int size = std::min(core + 2 * margin + (grid - 1), extent);
  size = std::min(extent, size + (extent - size) % grid);
  const int wanted = begin - margin;
  const int start = wanted > 0 ? wanted / grid * grid : 0;
  return {std::clamp(start, 0, extent - size), size};
}

std::vector<ReuseWindow> reuse_windows(const TileMask& mask, int margin, int max_run_tiles,
                                       int alignment) {
  std::vector<ReuseWindow> windows;
  const int most = std::max(1, max_run_tiles);
  // Run lengths of 8, 4, 2, 1 tiles: a few window shapes, whatever the changed area looks like.
  const auto run_length = [&](int remaining) {
    for (int length : {8, 4, 2})
      if (length <= most && length <= remaining) return length;
    return 1;
  };
  for (int row = 0; row < mask.rows; ++row) {
    for (int column = 0; column < mask.columns;) {
      if (!mask.is_changed(column, row)) {
        ++column;
        continue;
      }
      int end = column;
      while (end < mask.columns && mask.is_changed(end, row)) ++end;
      while (column < end) {
        const int length = run_length(end - column);
        const PixelRect first = tile_rect(mask, column, row);
        const PixelRect last = tile_rect(mask, column + length - 1, row);
        ReuseWindow w;
        w.core = {first.x, first.y, last.x + last.w - first.x, first.h};
        // The shape from the full tile size, so a run at the right or bottom edge has the
        // shape of the others (shifted inwards).
        const WindowSpan x =
            window_span(w.core.x, length * mask.tile, margin, mask.width, alignment);
        const WindowSpan y = window_span(w.core.y, mask.tile, margin, mask.height, alignment);
        w.window = {x.start, y.start, x.size, y.size};
        windows.push_back(w);
        column += length;
      }
    }
  }
  return windows;
}

int64_t window_area(const std::vector<ReuseWindow>& windows) {
  int64_t area = 0;
  for (const ReuseWindow& w : windows) area += int64_t{w.window.w} * w.window.h;
  return area;
}

}  // namespace upframe
