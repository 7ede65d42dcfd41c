#include <gtest/gtest.h>

#include "test_frames.hpp"
#include "upframe/error.hpp"
#include "upframe/upscale/colour.hpp"
#include "upframe/upscale/upscaler.hpp"

extern "C" {
#include <libavutil/frame.h>
#include <libavutil/pixdesc.h>
}

namespace upframe {
namespace {

using test::component_codes;

Frame pattern_frame(int width, int height, AVPixelFormat format) {
  Frame like = test::zeroed_frame(width, height, format);
  like.av()->colorspace = AVCOL_SPC_BT709;
  like.av()->color_range = AVCOL_RANGE_MPEG;
  like.av()->color_primaries = AVCOL_PRI_BT709;
  like.av()->color_trc = AVCOL_TRC_BT709;
  like.av()->chroma_location = AVCHROMA_LOC_LEFT;
  like.av()->pts = 42;
  like.av()->sample_aspect_ratio = AVRational{4, 3};
  av_frame_new_side_data(like.av(), AV_FRAME_DATA_DISPLAYMATRIX, 36);
  return colour::rgb_to_frame(test::smooth_rgb(width, height), like);
}

class SwscaleFormats
    : public ::testing::TestWithParam<std::tuple<std::string, AVPixelFormat, int>> {};

TEST_P(SwscaleFormats, KeepsFormatPropsAndContent) {
  const auto& [method, format, scale] = GetParam();
  auto upscaler = make_swscale_upscaler(method, scale);
  EXPECT_EQ(upscaler->name(), method);
  EXPECT_EQ(upscaler->scale(), scale);
  EXPECT_GE(upscaler->preferred_workers(), 1);
  EXPECT_GT(upscaler->worker_memory_bytes(64, 36), size_t(64 * 36 * scale * scale));
  auto worker = upscaler->create_worker();
  const Frame input = pattern_frame(64, 36, format);
  for (int repeat = 0; repeat < 2; ++repeat) {  // the cached context is reused
    const Frame out = worker->upscale(input);
    ASSERT_EQ(out.width(), 64 * scale);
    ASSERT_EQ(out.height(), 36 * scale);
    EXPECT_EQ(out.format(), format);
    EXPECT_EQ(out.pts(), 42);
    EXPECT_EQ(out.av()->colorspace, AVCOL_SPC_BT709);
    EXPECT_EQ(out.av()->color_range, AVCOL_RANGE_MPEG);
    EXPECT_EQ(out.av()->color_primaries, AVCOL_PRI_BT709);
    EXPECT_EQ(out.av()->color_trc, AVCOL_TRC_BT709);
    EXPECT_EQ(out.av()->chroma_location, AVCHROMA_LOC_LEFT);
    EXPECT_EQ(out.av()->sample_aspect_ratio.num, 4);
    EXPECT_NE(av_frame_get_side_data(out.av(), AV_FRAME_DATA_DISPLAYMATRIX), nullptr);
    // Content: the upscaled image, seen as RGB, still is the smooth pattern.
    const nn::Tensor rgb = colour::frame_to_rgb(out);
    const nn::Tensor expected = test::smooth_rgb(64 * scale, 36 * scale);
    double sum = 0;
    for (size_t i = 0; i < rgb.data.size(); ++i) sum += std::abs(rgb.data[i] - expected.data[i]);
    EXPECT_LT(sum / rgb.data.size(), 0.02);
  }
}

INSTANTIATE_TEST_SUITE_P(Methods, SwscaleFormats,
                         ::testing::Values(std::make_tuple("lanczos", AV_PIX_FMT_YUV420P, 2),
                                           std::make_tuple("bicubic", AV_PIX_FMT_YUV420P, 3),
                                           std::make_tuple("lanczos", AV_PIX_FMT_YUV420P10LE, 2),
                                           std::make_tuple("bicubic", AV_PIX_FMT_YUV420P10LE, 4),
                                           std::make_tuple("lanczos", AV_PIX_FMT_RGB24, 2)),
                         [](const auto& info) {
                           return std::get<0>(info.param) + "_" +
                                  av_get_pix_fmt_name(std::get<1>(info.param)) + "_x" +
                                  std::to_string(std::get<2>(info.param));
                         });

TEST(Swscale, TenBitStaysTenBit) {
  // A 10-bit source is scaled at 10 bits, not through 8: codes that are not multiples of 4
  // survive a flat area.
  Frame flat = test::zeroed_frame(32, 16, AV_PIX_FMT_YUV420P10LE);
  test::fill_component(flat, 0, 32, 16, 517);
  test::fill_component(flat, 1, 16, 8, 513);
  test::fill_component(flat, 2, 16, 8, 511);
  auto worker = make_swscale_upscaler("lanczos", 2)->create_worker();
  const Frame out = worker->upscale(flat);
  const auto luma = component_codes(out, 0, 64, 32);
  for (uint16_t code : luma) EXPECT_EQ(code, 517);
  EXPECT_EQ(component_codes(out, 1, 32, 16)[100], 513);
}

TEST(Swscale, UntaggedSdFrameKeepsItsMatrixWhenUpscaledPast720) {
  Frame sd = test::zeroed_frame(16, 480, AV_PIX_FMT_YUV420P);
  test::fill_component(sd, 0, 16, 480, 100);
  test::fill_component(sd, 1, 8, 240, 128);
  test::fill_component(sd, 2, 8, 240, 128);
  const Frame out = make_swscale_upscaler("bicubic", 2)->create_worker()->upscale(sd);
  EXPECT_EQ(out.height(), 960);
  EXPECT_EQ(out.av()->colorspace, AVCOL_SPC_SMPTE170M);
}

TEST(Swscale, RejectsUnknownMethodAndBadScale) {
  EXPECT_THROW(make_swscale_upscaler("nearest-ish", 2), UsageError);
  EXPECT_THROW(make_swscale_upscaler("lanczos", 0), UsageError);
  EXPECT_THROW(make_swscale_upscaler("lanczos", 17), UsageError);
}

}  // namespace
}  // namespace upframe
