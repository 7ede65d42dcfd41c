#include "upframe/tile_copy.hpp"

#include <cstring>
#include <string>

extern "C" {
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
}

#include "upframe/error.hpp"

namespace upframe {

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
