// The CUDA upscaler's device-resident path, with several downloads in flight at once (the two
// device output buffers alternate; the third frame reuses the first's): device frames (yuv420p
// uploads; NVDEC's nv12 is covered by the colour tests) and host yuv420p frames (uploaded by
// the path) each give the host route's result for their own frame: colour on the host, the same
// CUDA network, within one code. Runs only where a CUDA device is present.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <random>
#include <vector>

#include "nn/nn_test_util.hpp"
#include "upframe/cuda_device.hpp"
#include "upframe/nn/model.hpp"
#include "upframe/upscale/colour.hpp"
#include "upframe/upscale/neural_upscaler.hpp"
#include "upscale/test_frames.hpp"

namespace upframe::test {
namespace {

// The largest difference between two yuv420p frames' codes.
int worst_code_difference(const Frame& a, const Frame& b) {
  EXPECT_EQ(a.width(), b.width());
  EXPECT_EQ(a.height(), b.height());
  EXPECT_EQ(a.format(), b.format());
  int worst = 0;
  for (int p = 0; p < 3; ++p) {
    const int w = p == 0 ? a.width() : (a.width() + 1) / 2;
    const int h = p == 0 ? a.height() : (a.height() + 1) / 2;
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        worst = std::max(worst, std::abs(int(a.av()->data[p][y * a.av()->linesize[p] + x]) -
                                         int(b.av()->data[p][y * b.av()->linesize[p] + x])));
  }
  return worst;
}

TEST(DeviceFramePath, FramesInFlightEachMatchTheHostRoute) {
  const CudaDeviceInfo dev = cuda_device_info();
  if (!dev.available) GTEST_SKIP() << dev.reason;
  const auto model = source_model("models/realesr-animevideov3-x2.param");
  NeuralUpscaler upscaler(model, nn::Precision::kFp32, 0, 1, true);
  upscaler.prepare(1);
  std::unique_ptr<UpscaleWorker> worker = upscaler.create_worker();
  const auto executor = nn::make_cuda_executor(model, nn::Precision::kFp32);
  std::mt19937 rng(21);
  const ColourSetup setup{AVCOL_SPC_BT709, AVCOL_RANGE_MPEG, AVCHROMA_LOC_LEFT};
  std::vector<Frame> host, in_flight;
  for (int i = 0; i < 3; ++i) {
    host.push_back(random_yuv_frame(48, 32, AV_PIX_FMT_YUV420P, setup, rng));
    std::string why;
    const Frame device = upload_to_cuda_frame(host.back(), &why);
    ASSERT_TRUE(device) << why;
    in_flight.push_back(worker->upscale_started(device));
    in_flight.push_back(worker->upscale_started(host.back()));
  }
  for (size_t i = 0; i < in_flight.size(); ++i) {
    SCOPED_TRACE(std::string(i % 2 ? "host" : "device") + " frame " + std::to_string(i / 2));
    in_flight[i].wait_ready();
    ASSERT_FALSE(in_flight[i].on_device());
    EXPECT_EQ(in_flight[i].format(), AV_PIX_FMT_YUV420P);
    const Frame& source = host[i / 2];
    nn::Tensor rgb = executor->run(colour::frame_to_rgb(source));
    for (float& v : rgb.data) v = colour::clamp01(v);
    const Frame expected = colour::rgb_to_frame(rgb, source);
    // The colour kernels agree with the host conversion within one code (device_colour.hpp).
    EXPECT_LE(worst_code_difference(in_flight[i], expected), 1);
  }
}

// A model whose fp16 intermediate overflows: the first 1x1 convolution sums the three channels
// times 60000 (up to 180000, over fp16's 65504: inf, as cuDNN stores it), the second scales
// back by 1/60000. In fp32 the output is r+g+b per channel. The fp16 upscaler must notice, say
// so once and give the fp32 result: on a device frame, on a host frame, and on a second worker.
TEST(DeviceFramePath, Fp16OverflowFallsBackToFp32) {
  const CudaDeviceInfo dev = cuda_device_info();
  if (!dev.available) GTEST_SKIP() << dev.reason;
  std::vector<float> up(9, 60000.f), down(9, 0.f), zero(3, 0.f);
  for (int i = 0; i < 3; ++i) down[i * 3 + i] = 1.f / 60000.f;
  const auto model = write_model(
      "fp16-overflow",
      {"Input in 0 1 data", "Convolution c1 1 1 data mid 0=3 1=1 5=1 6=9",
       "Convolution c2 1 1 mid out 0=3 1=1 5=1 6=9"},
      flag_fp32() + floats(up) + floats(zero) + flag_fp32() + floats(down) + floats(zero));
  NeuralUpscaler fp16(model, nn::Precision::kFp16, 0, 1, true);
  NeuralUpscaler fp32(model, nn::Precision::kFp32, 0, 1, true);
  fp16.prepare(2);
  fp32.prepare(1);
  auto first = fp16.create_worker(), second = fp16.create_worker(),
       reference = fp32.create_worker();
  std::mt19937 rng(22);
  const ColourSetup setup{AVCOL_SPC_BT709, AVCOL_RANGE_JPEG, AVCHROMA_LOC_LEFT};
  const Frame host = random_yuv_frame(40, 24, AV_PIX_FMT_YUV420P, setup, rng);
  std::string why;
  const Frame device = upload_to_cuda_frame(host, &why);
  ASSERT_TRUE(device) << why;
  const Frame expected = reference->upscale(host);
  EXPECT_LE(worst_code_difference(first->upscale(device), expected), 1);
  EXPECT_LE(worst_code_difference(first->upscale(host), expected), 1);
  EXPECT_LE(worst_code_difference(second->upscale(host), expected), 1);
}

}  // namespace
}  // namespace upframe::test
