// DeviceFrameCopier: the copy that takes NVDEC frames out of the decoder's surfaces keeps every
// byte and the properties, in a frame of its own. Runs only where a CUDA device is present.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "upframe/cuda_device.hpp"
#include "upframe/error.hpp"

extern "C" {
#include <libavutil/pixdesc.h>
}

namespace upframe {
namespace {

Frame random_frame(int width, int height, AVPixelFormat format, std::mt19937& rng) {
  Frame frame = Frame::allocate(width, height, format);
  for (int p = 0; p < 4 && frame.av()->data[p]; ++p) {
    const int rows = p == 0 ? height : (height + 1) / 2;
    for (int y = 0; y < rows; ++y)
      for (int x = 0; x < frame.av()->linesize[p]; ++x)
        frame.av()->data[p][y * frame.av()->linesize[p] + x] = uint8_t(rng());
  }
  frame.av()->pts = 1234;
  frame.av()->color_range = AVCOL_RANGE_JPEG;
  return frame;
}

TEST(DeviceFrameCopier, CopiesEveryVisibleByteAndTheProperties) {
  const CudaDeviceInfo dev = cuda_device_info();
  if (!dev.available) GTEST_SKIP() << dev.reason;
  std::mt19937 rng(11);
  DeviceFrameCopier copier;
  // Odd sizes (chroma rounding), both NVDEC output formats, and a size change on the way.
  for (const auto& [w, h, format] :
       {std::tuple{99, 57, AV_PIX_FMT_NV12}, std::tuple{99, 57, AV_PIX_FMT_NV12},
        std::tuple{64, 36, AV_PIX_FMT_P010LE}}) {
    const Frame host = random_frame(w, h, format, rng);
    std::string why;
    const Frame device = upload_to_cuda_frame(host, &why);
    ASSERT_TRUE(device) << why;
    const Frame copy = copier.copy(device);
    ASSERT_TRUE(copy.on_device());
    EXPECT_NE(copy.av()->data[0], device.av()->data[0]);
    EXPECT_EQ(copy.data_format(), format);
    EXPECT_EQ(copy.pts(), 1234);
    EXPECT_EQ(copy.av()->color_range, AVCOL_RANGE_JPEG);
    const Frame back = copy.to_host();
    ASSERT_EQ(back.width(), w);
    ASSERT_EQ(back.height(), h);
    const int sample = format == AV_PIX_FMT_P010LE ? 2 : 1;
    for (int p = 0; p < 2; ++p) {
      const int rows = p == 0 ? h : (h + 1) / 2;
      const int bytes = p == 0 ? w * sample : (w + 1) / 2 * 2 * sample;
      for (int y = 0; y < rows; ++y)
        ASSERT_EQ(std::memcmp(back.av()->data[p] + y * back.av()->linesize[p],
                              host.av()->data[p] + y * host.av()->linesize[p], bytes),
                  0)
            << av_get_pix_fmt_name(format) << " plane " << p << " row " << y;
    }
  }
}

TEST(DeviceFrameCopier, RefusesAHostFrame) {
  DeviceFrameCopier copier;
  std::mt19937 rng(12);
  EXPECT_THROW(copier.copy(random_frame(16, 8, AV_PIX_FMT_NV12, rng)), Error);
}

}  // namespace
}  // namespace upframe
