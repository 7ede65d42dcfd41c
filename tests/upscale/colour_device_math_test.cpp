// The per-pixel functions of the CUDA colour conversion (src/upscale/cuda/device_colour_math.hpp)
// run here on the CPU over whole frames, as the kernels' threads would, and must give exactly
// frame_to_rgb()'s floats and rgb_to_frame()'s codes (4:2:0 formats, odd sizes, several
// matrices, ranges and chroma sitings). On the CPU the order of float operations is the same
// on both sides, so the results are bit-identical; tests/cuda compares the real kernels.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../../src/upscale/cuda/device_colour_math.hpp"
#include "test_frames.hpp"
#include "upframe/upscale/colour.hpp"

extern "C" {
#include <libavutil/pixdesc.h>
}

namespace upframe {
namespace {

namespace dm = colour::device_math;

dm::YuvPlanes planes_of(const Frame& frame) {
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(frame.format());
  dm::YuvPlanes p;
  p.width = frame.width();
  p.height = frame.height();
  p.chroma_width = (p.width + 1) / 2;
  p.chroma_height = (p.height + 1) / 2;
  p.bits = desc->comp[0].depth;
  p.bytes = desc->comp[0].depth + desc->comp[0].shift > 8 ? 2 : 1;
  p.shift = desc->comp[0].shift;
  p.interleaved = frame.format() == AV_PIX_FMT_NV12 || frame.format() == AV_PIX_FMT_P010LE;
  for (int i = 0; i < 3; ++i) {
    p.data[i] = frame.av()->data[i];
    p.pitch[i] = frame.av()->linesize[i];
  }
  return p;
}

const test::ColourSetup kSetups[] = {
    {AVCOL_SPC_BT709, AVCOL_RANGE_MPEG, AVCHROMA_LOC_UNSPECIFIED},
    {AVCOL_SPC_BT470BG, AVCOL_RANGE_JPEG, AVCHROMA_LOC_CENTER},
    {AVCOL_SPC_BT2020_NCL, AVCOL_RANGE_MPEG, AVCHROMA_LOC_TOPLEFT},
    {AVCOL_SPC_SMPTE240M, AVCOL_RANGE_JPEG, AVCHROMA_LOC_BOTTOM},
    {AVCOL_SPC_UNSPECIFIED, AVCOL_RANGE_UNSPECIFIED, AVCHROMA_LOC_LEFT},
};
const AVPixelFormat kFormats[] = {AV_PIX_FMT_YUV420P, AV_PIX_FMT_YUV420P10LE, AV_PIX_FMT_NV12,
                                  AV_PIX_FMT_P010LE};
const int kSizes[][2] = {{37, 23}, {64, 36}, {2, 2}, {1, 1}, {5, 8}};

TEST(ColourDeviceMath, YuvToRgbPerPixelIsFrameToRgbExactly) {
  std::mt19937 rng(1);
  for (const AVPixelFormat format : kFormats)
    for (const auto& size : kSizes)
      for (const test::ColourSetup& setup : kSetups) {
        const Frame frame = test::random_yuv_frame(size[0], size[1], format, setup, rng);
        const nn::Tensor cpu = colour::frame_to_rgb(frame);
        const colour::ColourParams params = colour::colour_params(frame.av());
        const dm::YuvPlanes planes = planes_of(frame);
        int mismatches = 0;
        for (int y = 0; y < size[1]; ++y)
          for (int x = 0; x < size[0]; ++x) {
            const colour::Rgb px = dm::yuv_pixel_to_rgb(planes, params, x, y);
            const float got[3] = {px.r, px.g, px.b};
            for (int c = 0; c < 3; ++c) {
              const float want = cpu.at(c, y, x);
              mismatches += std::memcmp(&got[c], &want, sizeof want) != 0;
            }
          }
        EXPECT_EQ(mismatches, 0) << test::describe_frame(format, size[0], size[1], setup);
      }
}

TEST(ColourDeviceMath, RgbToYuvPassesAreRgbToFrameExactly) {
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> value(-0.1f, 1.1f);  // clamping is exercised too
  for (const AVPixelFormat format : kFormats)
    for (const auto& size : kSizes)
      for (const test::ColourSetup& setup : kSetups) {
        const int width = size[0], height = size[1];
        const Frame like = test::random_yuv_frame(width, height, format, setup, rng);
        nn::Tensor rgb(3, height, width);
        for (float& v : rgb.data) v = value(rng);
        const Frame cpu = colour::rgb_to_frame(rgb, like);

        // The kernels' three passes.
        Frame dev = test::zeroed_frame(width, height, format);
        const dm::YuvPlanes planes = planes_of(dev);
        const colour::ColourParams params = colour::colour_params(like.av());
        const int cw = planes.chroma_width, ch = planes.chroma_height;
        std::vector<float> cb_full(size_t(width) * height), cr_full(cb_full.size());
        for (int y = 0; y < height; ++y)
          for (int x = 0; x < width; ++x) {
            const colour::Yuv yuv = dm::rgb_pixel_to_yuv(planes, params, x, y, rgb.at(0, y, x),
                                                         rgb.at(1, y, x), rgb.at(2, y, x));
            cb_full[size_t(y) * width + x] = yuv.cb;
            cr_full[size_t(y) * width + x] = yuv.cr;
          }
        std::vector<float> cb_rows(size_t(cw) * height), cr_rows(cb_rows.size());
        for (int y = 0; y < height; ++y)
          for (int i = 0; i < cw; ++i) {
            cb_rows[size_t(y) * cw + i] =
                dm::tent_filter(&cb_full[size_t(y) * width], 1, i, params.chroma_x, width);
            cr_rows[size_t(y) * cw + i] =
                dm::tent_filter(&cr_full[size_t(y) * width], 1, i, params.chroma_x, width);
          }
        const colour::Quantisation q = colour::quantisation(planes.bits, params.full_range);
        for (int j = 0; j < ch; ++j)
          for (int i = 0; i < cw; ++i) {
            dm::write_chroma(planes, 0, i, j,
                             colour::code_from_chroma(
                                 dm::tent_filter(&cb_rows[i], cw, j, params.chroma_y, height), q));
            dm::write_chroma(planes, 1, i, j,
                             colour::code_from_chroma(
                                 dm::tent_filter(&cr_rows[i], cw, j, params.chroma_y, height), q));
          }

        const std::string what = test::describe_frame(format, width, height, setup);
        EXPECT_EQ(test::component_codes(dev, 0, width, height),
                  test::component_codes(cpu, 0, width, height))
            << what;
        for (int c = 1; c < 3; ++c)
          EXPECT_EQ(test::component_codes(dev, c, cw, ch), test::component_codes(cpu, c, cw, ch))
              << what << " component " << c;
        // Whole words too: p010's low bits are zero on both sides.
        for (int y = 0; y < height; ++y)
          EXPECT_EQ(std::memcmp(dev.av()->data[0] + size_t(y) * dev.av()->linesize[0],
                                cpu.av()->data[0] + size_t(y) * cpu.av()->linesize[0],
                                size_t(width) * planes.bytes),
                    0)
              << what << " row " << y;
      }
}

}  // namespace
}  // namespace upframe
