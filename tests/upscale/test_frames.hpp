// Frames with known content for the upscale tests.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <random>
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

// The colour description a test frame carries.
struct ColourSetup {
  AVColorSpace space;
  AVColorRange range;
  AVChromaLocation location;
};

// "nv12 37x23 bt709 tv left": for failure messages.
inline std::string describe_frame(AVPixelFormat format, int width, int height,
                                  const ColourSetup& setup) {
  return std::string(av_get_pix_fmt_name(format)) + " " + std::to_string(width) + "x" +
         std::to_string(height) + " " + av_color_space_name(setup.space) + " " +
         av_color_range_name(setup.range) + " " + av_chroma_location_name(setup.location);
}

// A 4:2:0 frame of `format` with uniformly random codes in every component, tagged `setup`.
inline Frame random_yuv_frame(int width, int height, AVPixelFormat format, const ColourSetup& setup,
                              std::mt19937& rng) {
  Frame frame = zeroed_frame(width, height, format);
  frame.av()->colorspace = setup.space;
  frame.av()->color_range = setup.range;
  frame.av()->chroma_location = setup.location;
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(format);
  std::uniform_int_distribution<int> code(0, (1 << desc->comp[0].depth) - 1);
  for (int c = 0; c < 3; ++c) {
    const int w = c == 0 ? width : (width + 1) / 2, h = c == 0 ? height : (height + 1) / 2;
    std::vector<uint16_t> row(w);
    for (int y = 0; y < h; ++y) {
      for (auto& v : row) v = static_cast<uint16_t>(code(rng));
      av_write_image_line2(row.data(), frame.av()->data, frame.av()->linesize, desc, 0, y, c, w, 2);
    }
  }
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
