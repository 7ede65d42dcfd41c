// The CUDA upscaler's device-resident path: device frames (yuv420p uploads; NVDEC gives nv12,
// which the colour tests cover) upscaled with several downloads in flight at once give what the
// same worker gives for the host copies of those frames, each its own (the two device output
// buffers alternate; the third frame reuses the first's). Runs only where a device is present.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <random>
#include <vector>

#include "nn/nn_test_util.hpp"
#include "upframe/cuda_device.hpp"
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

TEST(DeviceFramePath, FramesInFlightEachMatchTheHostPath) {
  const CudaDeviceInfo dev = cuda_device_info();
  if (!dev.available) GTEST_SKIP() << dev.reason;
  NeuralUpscaler upscaler(source_model("models/realesr-animevideov3-x2.param"),
                          nn::Precision::kFp32, 0, 1, true);
  upscaler.prepare(1);
  std::unique_ptr<UpscaleWorker> worker = upscaler.create_worker();
  std::mt19937 rng(21);
  const ColourSetup setup{AVCOL_SPC_BT709, AVCOL_RANGE_MPEG, AVCHROMA_LOC_LEFT};
  std::vector<Frame> host, in_flight;
  for (int i = 0; i < 3; ++i) {
    host.push_back(random_yuv_frame(48, 32, AV_PIX_FMT_YUV420P, setup, rng));
    std::string why;
    const Frame device = upload_to_cuda_frame(host.back(), &why);
    ASSERT_TRUE(device) << why;
    in_flight.push_back(worker->upscale_started(device));
  }
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE("frame " + std::to_string(i));
    in_flight[i].wait_ready();
    ASSERT_FALSE(in_flight[i].on_device());
    EXPECT_EQ(in_flight[i].format(), AV_PIX_FMT_YUV420P);
    const Frame expected = worker->upscale(host[i]);  // colour on the host, same network
    // The colour kernels agree with the host conversion within one code (device_colour.hpp).
    EXPECT_LE(worst_code_difference(in_flight[i], expected), 1);
  }
}

}  // namespace
}  // namespace upframe::test
