#include "upframe/upscale/colour.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "test_frames.hpp"
#include "upframe/error.hpp"

extern "C" {
#include <libavutil/pixdesc.h>
}

namespace upframe {
namespace {

using colour::frame_to_rgb;
using colour::rgb_to_frame;
using test::component_codes;
using test::fill_component;
using test::smooth_rgb;

// The per-pixel math is constexpr so a CUDA kernel can share it; check it at compile time too.
constexpr colour::Quantisation kLimited8 = colour::quantisation(8, false);
static_assert(colour::code_from_luma(1.0f, kLimited8) == 235);
static_assert(colour::code_from_luma(0.0f, kLimited8) == 16);
static_assert(colour::code_from_chroma(0.0f, kLimited8) == 128);
static_assert(colour::quantisation(10, false).luma_offset == 64.0f);
static_assert(colour::quantisation(10, true).max_code == 1023);
static_assert(colour::round_clamp(-3.0f, 255) == 0 && colour::round_clamp(300.0f, 255) == 255);

Frame blank(int width, int height, AVPixelFormat format, AVColorSpace space = AVCOL_SPC_BT709,
            AVColorRange range = AVCOL_RANGE_MPEG) {
  Frame frame = test::zeroed_frame(width, height, format);
  frame.av()->colorspace = space;
  frame.av()->color_range = range;
  return frame;
}

// A frame of one YUV colour; returns its RGB.
colour::Rgb rgb_of_yuv(AVPixelFormat format, AVColorSpace space, uint16_t y, uint16_t u,
                       uint16_t v) {
  Frame frame = blank(8, 8, format, space);
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(format);
  const int cw = AV_CEIL_RSHIFT(8, desc->log2_chroma_w),
            ch = AV_CEIL_RSHIFT(8, desc->log2_chroma_h);
  fill_component(frame, 0, 8, 8, y);
  fill_component(frame, 1, cw, ch, u);
  fill_component(frame, 2, cw, ch, v);
  const nn::Tensor rgb = frame_to_rgb(frame);
  return {rgb.at(0, 3, 3), rgb.at(1, 3, 3), rgb.at(2, 3, 3)};
}

TEST(Colour, KnownBt709LimitedColoursMapToExpectedRgb) {
  const colour::Rgb white = rgb_of_yuv(AV_PIX_FMT_YUV420P, AVCOL_SPC_BT709, 235, 128, 128);
  EXPECT_NEAR(white.r, 1.0f, 1e-5);
  EXPECT_NEAR(white.g, 1.0f, 1e-5);
  EXPECT_NEAR(white.b, 1.0f, 1e-5);
  const colour::Rgb black = rgb_of_yuv(AV_PIX_FMT_YUV420P, AVCOL_SPC_BT709, 16, 128, 128);
  EXPECT_NEAR(black.r, 0.0f, 1e-5);
  EXPECT_NEAR(black.g, 0.0f, 1e-5);
  EXPECT_NEAR(black.b, 0.0f, 1e-5);
  // BT.709 red: Y = 16 + 219 * 0.2126 = 62.6, Cb = 102.3, Cr = 240.
  const colour::Rgb red = rgb_of_yuv(AV_PIX_FMT_YUV444P, AVCOL_SPC_BT709, 63, 102, 240);
  EXPECT_NEAR(red.r, 1.0f, 0.01);
  EXPECT_NEAR(red.g, 0.0f, 0.01);
  EXPECT_NEAR(red.b, 0.0f, 0.01);
  // The same codes read as BT.601 are a different colour: the matrix really is used.
  const colour::Rgb red601 = rgb_of_yuv(AV_PIX_FMT_YUV444P, AVCOL_SPC_SMPTE170M, 63, 102, 240);
  EXPECT_GT(std::abs(red601.r - red.r), 0.05);
  // 10-bit: codes scale by 4.
  const colour::Rgb red10 = rgb_of_yuv(AV_PIX_FMT_YUV444P10LE, AVCOL_SPC_BT709, 251, 409, 960);
  EXPECT_NEAR(red10.r, 1.0f, 0.01);
  EXPECT_NEAR(red10.g, 0.0f, 0.01);
  EXPECT_NEAR(red10.b, 0.0f, 0.01);
}

TEST(Colour, RgbToYuvGivesKnownCodes) {
  nn::Tensor rgb(3, 4, 4);
  std::fill(rgb.plane(0), rgb.plane(0) + 16, 1.0f);  // pure red
  Frame like = blank(4, 4, AV_PIX_FMT_YUV444P, AVCOL_SPC_BT709);
  Frame out = rgb_to_frame(rgb, like);
  EXPECT_EQ(component_codes(out, 0, 4, 4)[5], 63);
  EXPECT_EQ(component_codes(out, 1, 4, 4)[5], 102);
  EXPECT_EQ(component_codes(out, 2, 4, 4)[5], 240);
  // BT.601 red: Y 81, Cb 90, Cr 240.
  like.av()->colorspace = AVCOL_SPC_BT470BG;
  out = rgb_to_frame(rgb, like);
  EXPECT_EQ(component_codes(out, 0, 4, 4)[5], 81);
  EXPECT_EQ(component_codes(out, 1, 4, 4)[5], 90);
  EXPECT_EQ(component_codes(out, 2, 4, 4)[5], 240);
  // Full range white.
  std::fill(rgb.data.begin(), rgb.data.end(), 1.0f);
  like.av()->color_range = AVCOL_RANGE_JPEG;
  out = rgb_to_frame(rgb, like);
  EXPECT_EQ(component_codes(out, 0, 4, 4)[0], 255);
  EXPECT_EQ(component_codes(out, 1, 4, 4)[0], 128);
}

TEST(Colour, UnspecifiedMatrixIsBt601BelowHdAndBt709Above) {
  Frame sd = blank(16, 480, AV_PIX_FMT_YUV444P, AVCOL_SPC_UNSPECIFIED, AVCOL_RANGE_UNSPECIFIED);
  Frame hd = blank(16, 720, AV_PIX_FMT_YUV444P, AVCOL_SPC_UNSPECIFIED, AVCOL_RANGE_UNSPECIFIED);
  EXPECT_EQ(colour::colour_params(sd.av()).matrix, colour::Matrix::kBt601);
  EXPECT_EQ(colour::colour_params(hd.av()).matrix, colour::Matrix::kBt709);
  EXPECT_FALSE(colour::colour_params(sd.av()).full_range);
  Frame jpeg = blank(16, 16, AV_PIX_FMT_YUVJ420P, AVCOL_SPC_UNSPECIFIED, AVCOL_RANGE_UNSPECIFIED);
  EXPECT_TRUE(colour::colour_params(jpeg.av()).full_range);
  // Upscaling an untagged SD frame past 720 lines keeps (and records) bt601.
  nn::Tensor rgb = smooth_rgb(32, 960);
  Frame out = rgb_to_frame(rgb, sd);
  EXPECT_EQ(out.av()->colorspace, AVCOL_SPC_SMPTE170M);
  EXPECT_EQ(out.av()->color_range, AVCOL_RANGE_MPEG);
}

TEST(Colour, RejectsUnsupportedMatrixAndFormat) {
  Frame ycgco = blank(8, 8, AV_PIX_FMT_YUV444P, AVCOL_SPC_YCGCO);
  EXPECT_THROW(frame_to_rgb(ycgco), Error);
  Frame flt = test::zeroed_frame(8, 8, AV_PIX_FMT_GRAYF32LE);
  try {
    frame_to_rgb(flt);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("grayf32le"), std::string::npos) << e.what();
  }
}

// max |a - b| over the codes of all components of two frames of the same format and size.
int max_code_difference(const Frame& a, const Frame& b) {
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(a.format());
  int worst = 0;
  for (int c = 0; c < desc->nb_components; ++c) {
    const bool chroma =
        !(desc->flags & AV_PIX_FMT_FLAG_RGB) && desc->nb_components >= 3 && (c == 1 || c == 2);
    const int w = chroma ? AV_CEIL_RSHIFT(a.width(), desc->log2_chroma_w) : a.width();
    const int h = chroma ? AV_CEIL_RSHIFT(a.height(), desc->log2_chroma_h) : a.height();
    const auto ca = component_codes(a, c, w, h), cb = component_codes(b, c, w, h);
    for (size_t i = 0; i < ca.size(); ++i) worst = std::max(worst, std::abs(ca[i] - cb[i]));
  }
  return worst;
}

class RoundTrip444 : public ::testing::TestWithParam<AVPixelFormat> {};

TEST_P(RoundTrip444, FrameToRgbAndBackWithinOneLevel) {
  const AVPixelFormat format = GetParam();
  const nn::Tensor pattern = smooth_rgb(48, 32);
  Frame like = blank(48, 32, format, AVCOL_SPC_BT709);
  const Frame original = rgb_to_frame(pattern, like);
  ASSERT_EQ(original.format(), format);
  const nn::Tensor rgb = frame_to_rgb(original);
  const Frame again = rgb_to_frame(rgb, original);
  EXPECT_LE(max_code_difference(original, again), 1) << av_get_pix_fmt_name(format);
  // And the RGB read back is the pattern up to quantisation.
  float worst = 0;
  for (size_t i = 0; i < rgb.data.size(); ++i)
    worst = std::max(worst, std::abs(rgb.data[i] - pattern.data[i]));
  EXPECT_LT(worst, 0.012f) << av_get_pix_fmt_name(format);
}

INSTANTIATE_TEST_SUITE_P(
    Formats, RoundTrip444,
    ::testing::Values(AV_PIX_FMT_YUV444P, AV_PIX_FMT_YUV444P10LE, AV_PIX_FMT_YUV444P12LE,
                      AV_PIX_FMT_YUV444P16LE, AV_PIX_FMT_RGB24, AV_PIX_FMT_BGR24, AV_PIX_FMT_RGBA,
                      AV_PIX_FMT_RGB48LE, AV_PIX_FMT_RGB48BE, AV_PIX_FMT_RGBA64BE, AV_PIX_FMT_GBRP,
                      AV_PIX_FMT_GBRP10LE, AV_PIX_FMT_YUV444P10BE),
    [](const auto& info) { return std::string(av_get_pix_fmt_name(info.param)); });

class Subsampled : public ::testing::TestWithParam<AVPixelFormat> {};

TEST_P(Subsampled, SmoothPatternSurvivesWithinBounds) {
  const AVPixelFormat format = GetParam();
  const nn::Tensor pattern = smooth_rgb(64, 36);
  Frame like = blank(64, 36, format, AVCOL_SPC_BT709);
  const Frame frame = rgb_to_frame(pattern, like);
  ASSERT_EQ(frame.format(), format);
  const nn::Tensor rgb = frame_to_rgb(frame);
  double sum = 0;
  float worst = 0;
  for (size_t i = 0; i < rgb.data.size(); ++i) {
    const float d = std::abs(rgb.data[i] - pattern.data[i]);
    sum += d;
    worst = std::max(worst, d);
  }
  EXPECT_LT(sum / rgb.data.size(), 0.01) << av_get_pix_fmt_name(format);
  EXPECT_LT(worst, 0.08f) << av_get_pix_fmt_name(format);
  // A second round trip moves codes only a little: chroma gets slightly softer each time (the
  // tent filter is the transpose of bilinear, not its inverse). 3 levels of 8 bits at most.
  const Frame again = rgb_to_frame(rgb, frame);
  const int level = 1 << (av_pix_fmt_desc_get(format)->comp[0].depth - 8);
  EXPECT_LE(max_code_difference(frame, again), 3 * level);
}

INSTANTIATE_TEST_SUITE_P(Formats, Subsampled,
                         ::testing::Values(AV_PIX_FMT_YUV420P, AV_PIX_FMT_YUV422P,
                                           AV_PIX_FMT_YUV420P10LE, AV_PIX_FMT_NV12,
                                           AV_PIX_FMT_P010LE, AV_PIX_FMT_YUVA420P),
                         [](const auto& info) {
                           return std::string(av_get_pix_fmt_name(info.param));
                         });

TEST(Colour, SemiPlanarReadsLikePlanar) {
  // nv12 and yuv420p holding the same codes give the same RGB.
  const nn::Tensor pattern = smooth_rgb(32, 18);
  const Frame planar = rgb_to_frame(pattern, blank(32, 18, AV_PIX_FMT_YUV420P));
  const Frame semi = rgb_to_frame(pattern, blank(32, 18, AV_PIX_FMT_NV12));
  EXPECT_EQ(component_codes(planar, 1, 16, 9), component_codes(semi, 1, 16, 9));
  EXPECT_EQ(frame_to_rgb(planar).data, frame_to_rgb(semi).data);
}

TEST(Colour, FlatColourSurvivesChromaResampling) {
  Frame frame = blank(17, 11, AV_PIX_FMT_YUV420P);  // odd sizes: partial chroma samples
  fill_component(frame, 0, 17, 11, 120);
  fill_component(frame, 1, 9, 6, 90);
  fill_component(frame, 2, 9, 6, 170);
  const Frame again = rgb_to_frame(frame_to_rgb(frame), frame);
  EXPECT_EQ(max_code_difference(frame, again), 0);
}

TEST(Colour, GrayUsesLumaOnly) {
  Frame gray = test::zeroed_frame(8, 4, AV_PIX_FMT_GRAY8);
  fill_component(gray, 0, 8, 4, 51);
  const nn::Tensor rgb = frame_to_rgb(gray);  // gray is full range unless tagged limited
  for (float v : rgb.data) EXPECT_NEAR(v, 0.2f, 1e-6);
  const Frame back = rgb_to_frame(rgb, gray);
  EXPECT_EQ(back.format(), AV_PIX_FMT_GRAY8);
  EXPECT_EQ(component_codes(back, 0, 8, 4)[7], 51);
}

TEST(Colour, AlphaIsCarriedAndUpscaled) {
  Frame rgba = test::zeroed_frame(16, 8, AV_PIX_FMT_RGBA);
  for (int c = 0; c < 3; ++c) fill_component(rgba, c, 16, 8, 200);
  fill_component(rgba, 3, 16, 8, 77);
  nn::Tensor big(3, 16, 32);
  std::fill(big.data.begin(), big.data.end(), 0.5f);
  const Frame out = rgb_to_frame(big, rgba);
  ASSERT_EQ(out.format(), AV_PIX_FMT_RGBA);
  ASSERT_EQ(out.width(), 32);
  const auto alpha = component_codes(out, 3, 32, 16);
  for (uint16_t a : alpha) EXPECT_EQ(a, 77);
  EXPECT_EQ(component_codes(out, 0, 32, 16)[40], 128);
  // A frame without alpha written as yuva gets opaque alpha... and ya8 keeps its alpha.
  Frame ya = test::zeroed_frame(4, 4, AV_PIX_FMT_YA8);
  fill_component(ya, 0, 4, 4, 10);
  fill_component(ya, 1, 4, 4, 33);
  const Frame ya_out = rgb_to_frame(frame_to_rgb(ya), ya);
  EXPECT_EQ(component_codes(ya_out, 1, 4, 4)[0], 33);
  EXPECT_EQ(component_codes(ya_out, 0, 4, 4)[0], 10);
}

TEST(Colour, PalettedFramesBecomeRgba) {
  Frame pal = test::zeroed_frame(4, 4, AV_PIX_FMT_PAL8);
  std::fill(pal.av()->data[0], pal.av()->data[0] + pal.av()->linesize[0] * 4, 1);
  uint32_t* palette = reinterpret_cast<uint32_t*>(pal.av()->data[1]);
  palette[1] = 0xFF00FF00u;  // opaque green (ARGB)
  const nn::Tensor rgb = frame_to_rgb(pal);
  EXPECT_NEAR(rgb.at(0, 1, 1), 0.0f, 1e-6);
  EXPECT_NEAR(rgb.at(1, 1, 1), 1.0f, 1e-6);
  const Frame out = rgb_to_frame(rgb, pal);
  EXPECT_EQ(out.format(), AV_PIX_FMT_RGBA);
  EXPECT_EQ(component_codes(out, 3, 4, 4)[0], 255);
}

TEST(Colour, PropertiesAreCopied) {
  Frame like = blank(8, 8, AV_PIX_FMT_YUV420P10LE, AVCOL_SPC_BT2020_NCL);
  like.av()->pts = 1234;
  like.av()->color_primaries = AVCOL_PRI_BT2020;
  like.av()->color_trc = AVCOL_TRC_SMPTE2084;
  const Frame out = rgb_to_frame(smooth_rgb(16, 16), like);
  EXPECT_EQ(out.pts(), 1234);
  EXPECT_EQ(out.av()->colorspace, AVCOL_SPC_BT2020_NCL);
  EXPECT_EQ(out.av()->color_primaries, AVCOL_PRI_BT2020);
  EXPECT_EQ(out.av()->color_trc, AVCOL_TRC_SMPTE2084);
  EXPECT_EQ(out.av()->color_range, AVCOL_RANGE_MPEG);
}

}  // namespace
}  // namespace upframe
