// The CUDA colour conversion (src/upscale/cuda) against the CPU reference (frame_to_rgb /
// rgb_to_frame): random 4:2:0 frames (yuv420p, yuv420p10le, nv12, p010; odd sizes; padded
// pitches; several matrices, ranges and chroma sitings) uploaded and converted both ways.
// Tolerance (device_colour.hpp): RGB within 1e-6, codes within 1 level (nvcc may fuse a multiply
// and an add); the counts of inexact values are printed. Every test skips without a device.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../../src/upscale/cuda/device_frame_path.hpp"
#include "../../src/upscale/cuda/device_yuv_frame.hpp"
#include "upframe/cuda_device.hpp"
#include "upframe/error.hpp"
#include "upframe/nn/model.hpp"
#include "upframe/upscale/colour.hpp"
#include "upframe/upscale/neural_upscaler.hpp"
#include "upscale/test_frames.hpp"

extern "C" {
#include <libavutil/hwcontext.h>
#include <libavutil/pixdesc.h>
}

namespace upframe {
namespace {

using colour::cuda::DeviceYuvFrame;

const test::ColourSetup kSetups[] = {
    {AVCOL_SPC_BT709, AVCOL_RANGE_MPEG, AVCHROMA_LOC_UNSPECIFIED},
    {AVCOL_SPC_BT470BG, AVCOL_RANGE_JPEG, AVCHROMA_LOC_CENTER},
    {AVCOL_SPC_BT2020_NCL, AVCOL_RANGE_MPEG, AVCHROMA_LOC_TOPLEFT},
    {AVCOL_SPC_SMPTE240M, AVCOL_RANGE_JPEG, AVCHROMA_LOC_BOTTOM},
};
const AVPixelFormat kFormats[] = {AV_PIX_FMT_YUV420P, AV_PIX_FMT_YUV420P10LE, AV_PIX_FMT_NV12,
                                  AV_PIX_FMT_P010LE};
const int kSizes[][2] = {{37, 23}, {64, 36}, {1, 1}, {130, 3}};

// Bytes of a row of plane i and the plane's rows.
std::pair<int, int> plane_shape(const Frame& frame, int i) {
  const bool semi = frame.format() == AV_PIX_FMT_NV12 || frame.format() == AV_PIX_FMT_P010LE;
  const int bytes = av_pix_fmt_desc_get(frame.format())->comp[0].step;  // 1 or 2 in these formats
  const int cw = (frame.width() + 1) / 2, ch = (frame.height() + 1) / 2;
  if (i == 0) return {frame.width() * bytes, frame.height()};
  return {(semi ? 2 * cw : cw) * bytes, ch};
}

int plane_count(const Frame& frame) {
  return frame.format() == AV_PIX_FMT_NV12 || frame.format() == AV_PIX_FMT_P010LE ? 2 : 3;
}

// A frame's planes in device memory, each row padded by 6 bytes (3 samples of 16-bit formats),
// so pitches are not the host's nor a multiple of 32.
class DevicePlanes {
 public:
  explicit DevicePlanes(const Frame& host) {
    colour::cuda::device_yuv_format(host.format(), &frame_.format);
    frame_.width = host.width();
    frame_.height = host.height();
    for (int i = 0; i < plane_count(host); ++i) {
      const auto [row_bytes, rows] = plane_shape(host, i);
      frame_.pitch[i] = row_bytes + 6;
      EXPECT_EQ(cudaMalloc(&frame_.data[i], size_t(frame_.pitch[i]) * rows), cudaSuccess);
      EXPECT_EQ(cudaMemset(frame_.data[i], 0, size_t(frame_.pitch[i]) * rows), cudaSuccess);
      EXPECT_EQ(cudaMemcpy2D(frame_.data[i], frame_.pitch[i], host.av()->data[i],
                             host.av()->linesize[i], row_bytes, rows, cudaMemcpyHostToDevice),
                cudaSuccess);
    }
  }
  ~DevicePlanes() {
    for (void* p : frame_.data) cudaFree(p);
  }
  DevicePlanes(const DevicePlanes&) = delete;
  DevicePlanes& operator=(const DevicePlanes&) = delete;

  const DeviceYuvFrame& frame() const { return frame_; }
  // Copies the planes into `host` (same size and format).
  void download(Frame& host) const {
    for (int i = 0; i < plane_count(host); ++i) {
      const auto [row_bytes, rows] = plane_shape(host, i);
      EXPECT_EQ(cudaMemcpy2D(host.av()->data[i], host.av()->linesize[i], frame_.data[i],
                             frame_.pitch[i], row_bytes, rows, cudaMemcpyDeviceToHost),
                cudaSuccess);
    }
  }

 private:
  DeviceYuvFrame frame_;
};

struct DeviceFloats {
  explicit DeviceFloats(size_t count) : count(count) {
    EXPECT_EQ(cudaMalloc(reinterpret_cast<void**>(&data), count * sizeof(float)), cudaSuccess);
  }
  ~DeviceFloats() { cudaFree(data); }
  DeviceFloats(const DeviceFloats&) = delete;
  DeviceFloats& operator=(const DeviceFloats&) = delete;
  float* data = nullptr;
  size_t count;
};

TEST(ColourCuda, YuvToRgbMatchesFrameToRgb) {
  auto dev = upframe::cuda_device_info();
  if (!dev.available) GTEST_SKIP() << dev.reason;
  std::mt19937 rng(1);
  colour::cuda::DeviceColour gpu;
  size_t values = 0, inexact = 0;
  for (const AVPixelFormat format : kFormats)
    for (const auto& size : kSizes)
      for (const test::ColourSetup& setup : kSetups) {
        const Frame host = test::random_yuv_frame(size[0], size[1], format, setup, rng);
        const nn::Tensor cpu = colour::frame_to_rgb(host);
        const DevicePlanes planes(host);
        DeviceFloats rgb(cpu.data.size());
        gpu.yuv_to_rgb(planes.frame(), colour::colour_params(host.av()), rgb.data);
        gpu.synchronize();
        std::vector<float> got(cpu.data.size());
        ASSERT_EQ(
            cudaMemcpy(got.data(), rgb.data, got.size() * sizeof(float), cudaMemcpyDeviceToHost),
            cudaSuccess);
        float worst = 0;
        for (size_t i = 0; i < got.size(); ++i) {
          worst = std::max(worst, std::abs(got[i] - cpu.data[i]));
          inexact += got[i] != cpu.data[i];
        }
        values += got.size();
        EXPECT_LE(worst, 1e-6f) << test::describe_frame(format, size[0], size[1], setup);
      }
  std::printf("COLOUR_CUDA yuv->rgb: %zu of %zu values differ from the CPU bit pattern\n", inexact,
              values);
}

TEST(ColourCuda, RgbToYuvMatchesRgbToFrame) {
  auto dev = upframe::cuda_device_info();
  if (!dev.available) GTEST_SKIP() << dev.reason;
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> value(-0.1f, 1.1f);
  colour::cuda::DeviceColour gpu;
  size_t codes = 0, off_by_one = 0;
  for (const AVPixelFormat format : kFormats)
    for (const auto& size : kSizes)
      for (const test::ColourSetup& setup : kSetups) {
        const int width = size[0], height = size[1];
        const Frame like = test::random_yuv_frame(width, height, format, setup, rng);
        nn::Tensor rgb(3, height, width);
        for (float& v : rgb.data) v = value(rng);
        const Frame cpu = colour::rgb_to_frame(rgb, like);

        DeviceFloats device_rgb(rgb.data.size());
        ASSERT_EQ(cudaMemcpy(device_rgb.data, rgb.data.data(), rgb.data.size() * sizeof(float),
                             cudaMemcpyHostToDevice),
                  cudaSuccess);
        const Frame zero = test::zeroed_frame(width, height, format);
        const DevicePlanes planes(zero);
        gpu.rgb_to_yuv(device_rgb.data, planes.frame(), colour::colour_params(like.av()));
        gpu.synchronize();
        Frame got = test::zeroed_frame(width, height, format);
        planes.download(got);

        const std::string what = test::describe_frame(format, width, height, setup);
        for (int c = 0; c < 3; ++c) {
          const int w = c == 0 ? width : (width + 1) / 2, h = c == 0 ? height : (height + 1) / 2;
          const std::vector<uint16_t> want = test::component_codes(cpu, c, w, h);
          const std::vector<uint16_t> have = test::component_codes(got, c, w, h);
          int worst = 0;
          for (size_t i = 0; i < want.size(); ++i) {
            const int d = std::abs(int(want[i]) - int(have[i]));
            worst = std::max(worst, d);
            off_by_one += d != 0;
          }
          codes += want.size();
          EXPECT_LE(worst, 1) << what << " component " << c;
        }
      }
  std::printf("COLOUR_CUDA rgb->yuv: %zu of %zu codes differ by one level\n", off_by_one, codes);
  EXPECT_LE(off_by_one * 100, codes);  // rounding-midpoint cases only: well under 1 %
}

TEST(ColourCuda, DeviceFramesLikeNvdecConvertAsOnTheHost) {
  auto dev = upframe::cuda_device_info();
  if (!dev.available) GTEST_SKIP() << dev.reason;
  std::mt19937 rng(4);
  colour::cuda::DeviceColour gpu;
  for (const AVPixelFormat format : {AV_PIX_FMT_NV12, AV_PIX_FMT_P010LE}) {
    const Frame host = test::random_yuv_frame(99, 57, format, kSetups[0], rng);
    std::string why;
    const Frame device = upload_to_cuda_frame(host, &why);
    ASSERT_TRUE(device) << why;
    const colour::ColourParams params = colour::colour_params(device.av());
    const nn::Tensor cpu = colour::frame_to_rgb(host);
    DeviceFloats rgb(cpu.data.size());
    gpu.yuv_to_rgb(colour::cuda::device_yuv_frame(device), params, rgb.data);
    gpu.synchronize();
    std::vector<float> got(cpu.data.size());
    ASSERT_EQ(cudaMemcpy(got.data(), rgb.data, got.size() * sizeof(float), cudaMemcpyDeviceToHost),
              cudaSuccess);
    float worst = 0;
    for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(got[i] - cpu.data[i]));
    EXPECT_LE(worst, 1e-6f) << av_get_pix_fmt_name(format);
  }
}

// Which frames the CUDA upscaler's device path takes (runs without a device): NVDEC's 4:4:4
// and 12-bit frames go to the host route instead of failing in device_yuv_frame.
TEST(ColourDevicePath, TakesOnlyWhatTheDeviceColourCodeReads) {
  for (const AVPixelFormat format :
       {AV_PIX_FMT_NV12, AV_PIX_FMT_P010LE, AV_PIX_FMT_YUV420P, AV_PIX_FMT_YUV420P10LE})
    EXPECT_TRUE(DeviceFramePath::takes(true, format)) << av_get_pix_fmt_name(format);
  for (const AVPixelFormat format : {AV_PIX_FMT_YUV444P, AV_PIX_FMT_YUV444P16LE, AV_PIX_FMT_P016LE,
                                     AV_PIX_FMT_YUV420P12LE, AV_PIX_FMT_NV16})
    EXPECT_FALSE(DeviceFramePath::takes(true, format)) << av_get_pix_fmt_name(format);
  EXPECT_TRUE(DeviceFramePath::takes(false, AV_PIX_FMT_YUV420P));
  EXPECT_TRUE(DeviceFramePath::takes(false, AV_PIX_FMT_YUV420P10LE));
  EXPECT_FALSE(DeviceFramePath::takes(false, AV_PIX_FMT_NV12));  // host nv12: run_tiled
  // The layout predicate the device-check kit applies to NVDEC's surfaces agrees.
  colour::cuda::DeviceYuvFormat f{};
  EXPECT_TRUE(colour::cuda::device_yuv_format_of({1, 1, 10, 2, true, true}, &f));
  EXPECT_EQ(f, colour::cuda::DeviceYuvFormat::kP010);
  EXPECT_FALSE(colour::cuda::device_yuv_format_of({1, 1, 12, 2, true, true}, &f));   // p016
  EXPECT_FALSE(colour::cuda::device_yuv_format_of({0, 0, 8, 1, false, false}, &f));  // 4:4:4
}

// A 4:4:4 device frame (what NVDEC gives for a 4:4:4 stream) is upscaled by the host route,
// with the same result as its host copy.
TEST(ColourDevicePath, A444DeviceFrameTakesTheHostRoute) {
  auto dev = upframe::cuda_device_info();
  if (!dev.available) GTEST_SKIP() << dev.reason;
  std::mt19937 rng(5);
  const Frame host = test::random_yuv_frame(33, 21, AV_PIX_FMT_YUV444P, kSetups[0], rng);
  std::string why;
  const Frame device = upload_to_cuda_frame(host, &why);
  ASSERT_TRUE(device) << why;
  const auto model =
      nn::Model::load(std::string(UPFRAME_SOURCE_DIR) + "/models/realesr-animevideov3-x2.param",
                      std::string(UPFRAME_SOURCE_DIR) + "/models/realesr-animevideov3-x2.bin");
  NeuralUpscaler upscaler(model, nn::Precision::kFp32, 0, 1, true);
  upscaler.prepare(1);
  auto worker = upscaler.create_worker();
  const Frame from_device = worker->upscale(device);
  const Frame from_host = worker->upscale(host);
  ASSERT_EQ(from_device.format(), AV_PIX_FMT_YUV444P);
  for (int p = 0; p < 3; ++p)
    for (int y = 0; y < from_host.height(); ++y)
      ASSERT_EQ(std::memcmp(from_device.av()->data[p] + y * from_device.av()->linesize[p],
                            from_host.av()->data[p] + y * from_host.av()->linesize[p],
                            size_t(from_host.width())),
                0);
}

TEST(ColourCuda, RejectsBadInput) {
  auto dev = upframe::cuda_device_info();
  if (!dev.available) GTEST_SKIP() << dev.reason;
  colour::cuda::DeviceColour gpu;
  DeviceYuvFrame empty;
  colour::ColourParams params;
  params.chroma_x.factor = params.chroma_y.factor = 2;
  EXPECT_THROW(gpu.yuv_to_rgb(empty, params, nullptr), Error);
  std::mt19937 rng(3);
  const Frame host = test::random_yuv_frame(16, 8, AV_PIX_FMT_NV12, kSetups[0], rng);
  const DevicePlanes planes(host);
  DeviceFloats rgb(3 * 16 * 8);
  colour::ColourParams full_chroma = colour::colour_params(host.av());
  full_chroma.chroma_x.factor = 1;  // 4:4:4 parameters for a 4:2:0 picture
  EXPECT_THROW(gpu.yuv_to_rgb(planes.frame(), full_chroma, rgb.data), Error);
  EXPECT_THROW(colour::cuda::device_yuv_frame(host), Error);  // a host frame
}

}  // namespace
}  // namespace upframe
