// Frames with known content for the upscale tests.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "upframe/frame.hpp"
#include "upframe/nn/tensor.hpp"

extern "C" {
#include <libavutil/pixdesc.h>
}

namespace upframe::test {

// A smooth RGB pattern in [0,1] (gradients and a soft disc; every value in gamut).
inline nn::Tensor smooth_rgb(int width, int height) {
  nn::Tensor t(3, height, width);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      const float u = float(x) / width, v = float(y) / height;
      const float d = std::hypot(u - 0.5f, v - 0.5f);
      t.at(0, y, x) = 0.1f + 0.8f * u;
      t.at(1, y, x) = 0.1f + 0.8f * v;
      t.at(2, y, x) = 0.5f + 0.4f * std::cos(d * 5.0f);
    }
  return t;
}

// One component of a frame as codes (av_read_image_line2), at that component's resolution.
inline std::vector<uint16_t> component_codes(const Frame& frame, int c, int width, int height) {
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(frame.format());
  std::vector<uint16_t> codes(size_t(width) * height);
  const uint8_t* data[4] = {frame.av()->data[0], frame.av()->data[1], frame.av()->data[2],
                            frame.av()->data[3]};
  for (int y = 0; y < height; ++y)
    av_read_image_line2(codes.data() + size_t(y) * width, data, frame.av()->linesize, desc, 0, y, c,
                        width, 0, 2);
  return codes;
}

// A frame with zeroed buffers: av_write_image_line2 ORs bits into what is there.
inline Frame zeroed_frame(int width, int height, AVPixelFormat format) {
  Frame frame = Frame::allocate(width, height, format);
  for (AVBufferRef* buf : frame.av()->buf)
    if (buf) std::memset(buf->data, 0, buf->size);
  return frame;
}

// Writes the same code to every sample of component c.
inline void fill_component(Frame& frame, int c, int width, int height, uint16_t code) {
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(frame.format());
  std::vector<uint16_t> row(width, code);
  for (int y = 0; y < height; ++y)
    av_write_image_line2(row.data(), frame.av()->data, frame.av()->linesize, desc, 0, y, c, width,
                         2);
}

// PSNR of two 8-bit buffers.
inline double psnr8(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  double sum = 0;
  for (size_t i = 0; i < a.size(); ++i) sum += double(a[i] - b[i]) * double(a[i] - b[i]);
  const double mse = sum / double(a.size());
  return mse == 0 ? 99.0 : 10.0 * std::log10(255.0 * 255.0 / mse);
}

}  // namespace upframe::test
