#include "core/frame_planes.hpp"

extern "C" {
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
}

namespace upframe {

int visible_planes(AVPixelFormat format, int width, int height, PlaneExtent out[4]) {
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(format);
  int row_bytes[4] = {0, 0, 0, 0};
  if (!desc || (desc->flags & AV_PIX_FMT_FLAG_HWACCEL) ||
      av_image_fill_linesizes(row_bytes, format, width) < 0)
    return 0;
  const int planes = av_pix_fmt_count_planes(format);
  for (int p = 0; p < planes; ++p) {
    out[p].row_bytes = size_t(row_bytes[p]);
    out[p].rows = p == 1 || p == 2 ? AV_CEIL_RSHIFT(height, desc->log2_chroma_h) : height;
  }
  return planes;
}

}  // namespace upframe
