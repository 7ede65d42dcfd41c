// DeviceFrameCopier: the copy that takes NVDEC frames out of the decoder's surfaces keeps every
// byte and the properties, in a frame of its own; upload_to_cuda_frame and Frame::to_host copy
// every visible row (FFmpeg's own copy drops the last chroma row of odd heights). The device
// tests run only where a CUDA device is present; the plane arithmetic runs everywhere.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "../../src/core/frame_planes.hpp"
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

// What the per-plane copies copy: chroma rows and columns rounded up (FFmpeg 5.1's CUDA copy
// takes height >> 1 chroma rows: 28 here, one short).
TEST(DeviceFramePlanes, OddSizesKeepTheLastChromaRowAndColumn) {
  PlaneExtent p[4];
  ASSERT_EQ(visible_planes(AV_PIX_FMT_YUV420P, 99, 57, p), 3);
  EXPECT_EQ(p[0].row_bytes, 99u);
  EXPECT_EQ(p[0].rows, 57);
  EXPECT_EQ(p[1].row_bytes, 50u);
  EXPECT_EQ(p[1].rows, 29);
  EXPECT_EQ(p[2].rows, 29);
  ASSERT_EQ(visible_planes(AV_PIX_FMT_NV12, 99, 57, p), 2);
  EXPECT_EQ(p[1].row_bytes, 100u);  // 50 Cb, Cr pairs
  EXPECT_EQ(p[1].rows, 29);
  ASSERT_EQ(visible_planes(AV_PIX_FMT_P010LE, 99, 57, p), 2);
  EXPECT_EQ(p[0].row_bytes, 198u);
  EXPECT_EQ(p[1].row_bytes, 200u);
  ASSERT_EQ(visible_planes(AV_PIX_FMT_YUV444P16LE, 99, 57, p), 3);
  EXPECT_EQ(p[2].row_bytes, 198u);
  EXPECT_EQ(p[2].rows, 57);
  EXPECT_EQ(visible_planes(AV_PIX_FMT_CUDA, 99, 57, p), 0);
}

// The frame every device test starts from, and Frame::to_host, on odd sizes in the planar
// formats too (ColourCuda.DeviceFramesLikeNvdecConvertAsOnTheHost relies on both).
TEST(DeviceFramePlanes, UploadAndToHostKeepEveryVisibleByte) {
  const CudaDeviceInfo dev = cuda_device_info();
  if (!dev.available) GTEST_SKIP() << dev.reason;
  std::mt19937 rng(13);
  for (const AVPixelFormat format :
       {AV_PIX_FMT_YUV420P, AV_PIX_FMT_NV12, AV_PIX_FMT_P010LE, AV_PIX_FMT_YUV444P}) {
    const Frame host = random_frame(99, 57, format, rng);
    std::string why;
    const Frame device = upload_to_cuda_frame(host, &why);
    ASSERT_TRUE(device) << why;
    const Frame back = device.to_host();
    ASSERT_EQ(back.format(), format);
    PlaneExtent planes[4];
    const int count = visible_planes(format, 99, 57, planes);
    for (int p = 0; p < count; ++p)
      for (int y = 0; y < planes[p].rows; ++y)
        ASSERT_EQ(std::memcmp(back.av()->data[p] + y * back.av()->linesize[p],
                              host.av()->data[p] + y * host.av()->linesize[p], planes[p].row_bytes),
                  0)
            << av_get_pix_fmt_name(format) << " plane " << p << " row " << y;
  }
}

TEST(DeviceFrameCopier, RefusesAHostFrame) {
  DeviceFrameCopier copier;
  std::mt19937 rng(12);
  EXPECT_THROW(copier.copy(random_frame(16, 8, AV_PIX_FMT_NV12, rng)), Error);
}

}  // namespace
}  // namespace upframe
