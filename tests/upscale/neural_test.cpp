#include "upframe/upscale/neural_upscaler.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>

#include "support/test_support.hpp"
#include "test_frames.hpp"
#include "upframe/upscale/colour.hpp"
#include "upframe/upscale/factory.hpp"

extern "C" {
#include <libavutil/pixdesc.h>
}

namespace upframe {
namespace {

namespace fs = std::filesystem;

// An image's pixels as rgb24, through the ffmpeg CLI.
std::vector<uint8_t> rgb24_pixels(const fs::path& image) {
  const fs::path raw = test::scratch_dir("neural-raw") / "pixels.rgb";
  const auto result = test::run_command("ffmpeg -v error -y -i " + test::quote(image.string()) +
                                        " -f rawvideo -pix_fmt rgb24 " + test::quote(raw.string()));
  EXPECT_EQ(result.exit_status, 0) << result.stderr_text;
  std::ifstream in(raw, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

Frame rgb24_frame(const std::vector<uint8_t>& pixels, int width, int height) {
  Frame frame = Frame::allocate(width, height, AV_PIX_FMT_RGB24);
  for (int y = 0; y < height; ++y)
    std::memcpy(frame.av()->data[0] + size_t(y) * frame.av()->linesize[0],
                pixels.data() + size_t(y) * width * 3, size_t(width) * 3);
  return frame;
}

std::vector<uint8_t> frame_pixels(const Frame& frame) {
  std::vector<uint8_t> pixels(size_t(frame.width()) * frame.height() * 3);
  for (int y = 0; y < frame.height(); ++y)
    std::memcpy(pixels.data() + size_t(y) * frame.width() * 3,
                frame.av()->data[0] + size_t(y) * frame.av()->linesize[0],
                size_t(frame.width()) * 3);
  return pixels;
}

int max_difference(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  int worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

struct GoldenResult {
  double psnr;
  int max_diff;
};

GoldenResult run_golden(const std::string& precision, int tile) {
  const fs::path golden = test::source_dir() / "tests" / "golden";
  const Frame input = rgb24_frame(rgb24_pixels(golden / "mandel_256x144.png"), 256, 144);
  const std::vector<uint8_t> expected = rgb24_pixels(golden / "mandel_256x144.animevideov3-x2.png");
  UpscalerOptions options;
  options.scale = 2;
  options.precision = precision;
  options.tile = tile;
  auto upscaler = make_upscaler(options);
  const Frame out = upscaler->create_worker()->upscale(input);
  EXPECT_EQ(out.width(), 512);
  EXPECT_EQ(out.height(), 288);
  EXPECT_EQ(out.format(), AV_PIX_FMT_RGB24);
  const std::vector<uint8_t> actual = frame_pixels(out);
  EXPECT_EQ(actual.size(), expected.size());
  if (actual.size() != expected.size()) return {0, 255};
  return {test::psnr8(actual, expected), max_difference(actual, expected)};
}

// docs/INTERFACE.md, "Equality": fp32 agrees with the reference to at least 50 dB and at most 2 levels anywhere.
// (Tiled == untiled is tiling_test's job.)
TEST(Neural, GoldenMandelX2Fp32) {
  const GoldenResult whole = run_golden("fp32", 0);
  EXPECT_GE(whole.psnr, 50.0);
  EXPECT_LE(whole.max_diff, 2);
  std::printf("fp32: %.2f dB, max difference %d levels\n", whole.psnr, whole.max_diff);
}

// The same through tiles (tile 64 with the model's receptive radius as overlap: 4 x 3 tiles on
// the 256x144 input): the stitched result meets the same bar against the reference.
TEST(Neural, GoldenMandelX2Fp32Tiled) {
  const GoldenResult tiled = run_golden("fp32", 64);
  EXPECT_GE(tiled.psnr, 50.0);
  EXPECT_LE(tiled.max_diff, 2);
  std::printf("fp32, tile 64 (12 tiles): %.2f dB, max difference %d levels\n", tiled.psnr,
              tiled.max_diff);
}

TEST(Neural, GoldenMandelX2Bf16) {
  if (!nn::cpu_supports_bf16()) GTEST_SKIP() << "this CPU has no avx512_bf16/AMX";
  const GoldenResult result = run_golden("bf16", 0);
  EXPECT_GE(result.psnr, 40.0);
  std::printf("bf16: %.2f dB max %d\n", result.psnr, result.max_diff);
}

TEST(Neural, Yuv420FrameKeepsFormatSizeAndProps) {
  // A 4:2:0 10-bit frame from the smooth pattern, tagged bt709 limited.
  Frame like = test::zeroed_frame(64, 36, AV_PIX_FMT_YUV420P10LE);
  like.av()->colorspace = AVCOL_SPC_BT709;
  like.av()->color_range = AVCOL_RANGE_MPEG;
  like.av()->color_primaries = AVCOL_PRI_BT709;
  like.av()->pts = 7;
  const nn::Tensor pattern = test::smooth_rgb(64, 36);
  const Frame input = colour::rgb_to_frame(pattern, like);
  UpscalerOptions options;
  options.scale = 2;
  auto upscaler = make_upscaler(options);
  const Frame out = upscaler->create_worker()->upscale(input);
  EXPECT_EQ(out.width(), 128);
  EXPECT_EQ(out.height(), 72);
  EXPECT_EQ(out.format(), AV_PIX_FMT_YUV420P10LE);
  EXPECT_EQ(out.pts(), 7);
  EXPECT_EQ(out.av()->colorspace, AVCOL_SPC_BT709);
  EXPECT_EQ(out.av()->color_range, AVCOL_RANGE_MPEG);
  EXPECT_EQ(out.av()->color_primaries, AVCOL_PRI_BT709);
  // The content is the pattern, upscaled (the model sharpens, it does not change colours).
  const nn::Tensor rgb = colour::frame_to_rgb(out);
  const nn::Tensor expected = test::smooth_rgb(128, 72);
  double sum = 0;
  for (size_t i = 0; i < rgb.data.size(); ++i) sum += std::abs(rgb.data[i] - expected.data[i]);
  EXPECT_LT(sum / rgb.data.size(), 0.03);
}

TEST(Neural, WorkersShareThreadsAndEstimateMemory) {
  auto model = nn::Model::load(test::source_dir() / "models" / "realesr-animevideov3-x2.param",
                               test::source_dir() / "models" / "realesr-animevideov3-x2.bin");
  NeuralUpscaler upscaler(model, nn::Precision::kFp32, -1, 4);
  EXPECT_EQ(upscaler.threads_per_worker(), 4);
  upscaler.prepare(2);
  EXPECT_EQ(upscaler.threads_per_worker(), 2);
  upscaler.prepare(8);
  EXPECT_EQ(upscaler.threads_per_worker(), 1);
  EXPECT_GE(upscaler.overlap(), 18);
  const size_t small = upscaler.worker_memory_bytes(64, 36);
  const size_t large = upscaler.worker_memory_bytes(640, 360);
  EXPECT_GT(small, size_t(64 * 36 * 4 * 3));  // at least the output frame
  EXPECT_GT(large, small);
  // Two workers give the same result.
  const Frame input =
      colour::rgb_to_frame(test::smooth_rgb(40, 24), test::zeroed_frame(40, 24, AV_PIX_FMT_RGB24));
  const Frame a = upscaler.create_worker()->upscale(input);
  const Frame b = upscaler.create_worker()->upscale(input);
  EXPECT_EQ(frame_pixels(a), frame_pixels(b));
}

}  // namespace
}  // namespace upframe
