// copy_reused_tiles (upframe/tile_copy.hpp): the save stage's copy of reused tiles from the
// previous unique frame's result, in planar, semi-planar and packed formats, chroma included.
#include <gtest/gtest.h>

#include <cstring>

#include "upframe/error.hpp"
#include "upframe/tile_copy.hpp"

extern "C" {
#include <libavutil/pixdesc.h>
}

namespace upframe {
namespace {

Frame filled(int width, int height, AVPixelFormat format, uint8_t value) {
  Frame f = Frame::allocate(width, height, format);
  for (int p = 0; p < 4 && f.av()->buf[p]; ++p)
    std::memset(f.av()->buf[p]->data, value, f.av()->buf[p]->size);
  return f;
}

// Byte (x, y) of `plane`, x in bytes.
uint8_t byte_at(const Frame& f, int plane, int x, int y) {
  return f.av()->data[plane][y * f.av()->linesize[plane] + x];
}

struct FormatCase {
  AVPixelFormat format;
  int planes;
  int bytes_per_pixel[3];  // of each plane, at its own resolution
  int shift_x[3], shift_y[3];
};

class CopyReusedTiles : public ::testing::TestWithParam<FormatCase> {};

TEST_P(CopyReusedTiles, CopiesExactlyTheReusedTilesOfEveryPlane) {
  const FormatCase c = GetParam();
  // A 100x70 input in tiles of 32 (4 x 3, the last column 4 wide, the last row 6 high), x2.
  TileMask mask(100, 70, 32);
  std::fill(mask.changed.begin(), mask.changed.end(), uint8_t{1});
  mask.changed[1] = 0;                  // tile (1, 0)
  mask.changed[size_t(2) * 4 + 3] = 0;  // tile (3, 2): the bottom-right corner, partial
  const Frame previous = filled(200, 140, c.format, 7);
  Frame frame = filled(200, 140, c.format, 200);
  copy_reused_tiles(previous, frame, mask, 2);
  for (int p = 0; p < c.planes; ++p) {
    const int width = 200 >> c.shift_x[p], height = 140 >> c.shift_y[p];
    for (int y = 0; y < height; ++y)
      for (int x = 0; x < width; ++x) {
        // The tile this sample lies in, in input pixels.
        const int column = ((x << c.shift_x[p]) / 2) / 32, row = ((y << c.shift_y[p]) / 2) / 32;
        const uint8_t expected = mask.is_changed(column, row) ? 200 : 7;
        for (int b = 0; b < c.bytes_per_pixel[p]; ++b)
          ASSERT_EQ(byte_at(frame, p, x * c.bytes_per_pixel[p] + b, y), expected)
              << av_get_pix_fmt_name(c.format) << " plane " << p << " at " << x << "," << y;
      }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Formats, CopyReusedTiles,
    ::testing::Values(FormatCase{AV_PIX_FMT_YUV420P, 3, {1, 1, 1}, {0, 1, 1}, {0, 1, 1}},
                      FormatCase{AV_PIX_FMT_YUV420P10LE, 3, {2, 2, 2}, {0, 1, 1}, {0, 1, 1}},
                      FormatCase{AV_PIX_FMT_NV12, 2, {1, 2, 0}, {0, 1, 0}, {0, 1, 0}},
                      FormatCase{AV_PIX_FMT_YUV444P, 3, {1, 1, 1}, {0, 0, 0}, {0, 0, 0}},
                      FormatCase{AV_PIX_FMT_RGB24, 1, {3, 0, 0}, {0, 0, 0}, {0, 0, 0}}),
    [](const auto& info) {
      std::string name = av_get_pix_fmt_name(info.param.format);
      for (char& ch : name)
        if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
      return name;
    });

TEST(CopyReusedTilesErrors, FramesOfAnotherSizeAreRefused) {
  TileMask mask(100, 70, 32);
  mask.changed[0] = 0;
  const Frame previous = filled(200, 140, AV_PIX_FMT_YUV420P, 7);
  Frame other = filled(202, 140, AV_PIX_FMT_YUV420P, 7);
  EXPECT_THROW(copy_reused_tiles(previous, other, mask, 2), Error);
}

}  // namespace
}  // namespace upframe
