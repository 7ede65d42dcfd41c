#include "upframe/tile_mask.hpp"

#include <algorithm>
#include <cstring>
#include <string>

extern "C" {
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
}

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

std::vector<ReuseWindow> reuse_windows(const TileMask& mask, int margin, int max_run_tiles) {
  std::vector<ReuseWindow> windows;
  const int most = std::max(1, max_run_tiles);
  // Run lengths of 8, 4, 2, 1 tiles: a few window shapes, whatever the changed area looks like.
  const auto run_length = [&](int remaining) {
    for (int length : {8, 4, 2})
      if (length <= most && length <= remaining) return length;
    return 1;
  };
  const auto window_span = [](int begin, int size, int margin_px, int extent) {
    const int span = std::min(size + 2 * margin_px, extent);
    return std::pair{std::clamp(begin - margin_px, 0, extent - span), span};
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
        const auto [win_x, win_w] = window_span(w.core.x, length * mask.tile, margin, mask.width);
        const auto [win_y, win_h] = window_span(w.core.y, mask.tile, margin, mask.height);
        w.window = {win_x, win_y, win_w, win_h};
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

void copy_reused_tiles(const Frame& previous, Frame& frame, const TileMask& mask, int scale) {
  const AVFrame* from = previous.av();
  AVFrame* to = frame.av();
  if (previous.on_device() || frame.on_device() || from->format != to->format ||
      from->width != to->width || from->height != to->height || to->width != mask.width * scale ||
      to->height != mask.height * scale)
    throw Error({}, "tile reuse cannot copy tiles between these frames (" +
                        std::to_string(from->width) + "x" + std::to_string(from->height) +
                        " into " + std::to_string(to->width) + "x" + std::to_string(to->height) +
                        ")");
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(frame.format());
  if (!desc || (desc->flags & (AV_PIX_FMT_FLAG_BITSTREAM | AV_PIX_FMT_FLAG_PAL)))
    throw Error({}, "tile reuse cannot copy tiles of this pixel format");
  const int planes = av_pix_fmt_count_planes(frame.format());
  const bool rgb = (desc->flags & AV_PIX_FMT_FLAG_RGB) != 0;
  // Byte offset of pixel column x in a plane (subsampling and packing as FFmpeg lays it out).
  const auto column_bytes = [&](int x, int plane) {
    return static_cast<ptrdiff_t>(av_image_get_linesize(frame.format(), x, plane));
  };
  for (int row = 0; row < mask.rows; ++row)
    for (int column = 0; column < mask.columns; ++column) {
      if (mask.is_changed(column, row)) continue;
      const PixelRect t = tile_rect(mask, column, row);
      const int x0 = t.x * scale, y0 = t.y * scale;
      const int x1 = x0 + t.w * scale, y1 = y0 + t.h * scale;
      for (int plane = 0; plane < planes; ++plane) {
        const bool chroma = !rgb && (plane == 1 || plane == 2);
        const int sy = chroma ? desc->log2_chroma_h : 0;
        // Ceiling at the frame's far edge, exact inside (tile corners are even).
        const int py0 = y0 >> sy, py1 = -((-y1) >> sy);
        const ptrdiff_t begin = column_bytes(x0, plane);
        const size_t bytes = static_cast<size_t>(column_bytes(x1, plane) - begin);
        for (int y = py0; y < py1; ++y)
          std::memcpy(to->data[plane] + static_cast<ptrdiff_t>(y) * to->linesize[plane] + begin,
                      from->data[plane] + static_cast<ptrdiff_t>(y) * from->linesize[plane] + begin,
                      bytes);
      }
    }
}

}  // namespace upframe
