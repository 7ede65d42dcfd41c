// Helpers for the nn tests: PNG <-> planar float tensors (through the ffmpeg CLI), image
// comparison, and writing hand-made ncnn models.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "support/test_support.hpp"
#include "upframe/nn/tensor.hpp"

namespace upframe::test {

struct Rgb8 {
  int width = 0, height = 0;
  std::vector<uint8_t> pixels;  // interleaved RGB
};

inline Rgb8 read_png_rgb(const fs::path& png) {
  Rgb8 img;
  CommandResult probe = run_command(
      "ffprobe -v error -select_streams v:0 -show_entries stream=width,height -of csv=p=0 " +
      quote(png.string()));
  if (probe.exit_status != 0 ||
      std::sscanf(probe.stdout_text.c_str(), "%d,%d", &img.width, &img.height) != 2)
    throw std::runtime_error("ffprobe failed on " + png.string() + ": " + probe.stderr_text);
  CommandResult raw =
      run_command("ffmpeg -v error -i " + quote(png.string()) + " -f rawvideo -pix_fmt rgb24 -");
  if (raw.exit_status != 0 || raw.stdout_text.size() != size_t(img.width) * img.height * 3)
    throw std::runtime_error("ffmpeg could not decode " + png.string() + ": " + raw.stderr_text);
  img.pixels.assign(raw.stdout_text.begin(), raw.stdout_text.end());
  return img;
}

// RGB / 255, planar: the Real-ESRGAN family's input.
inline nn::Tensor to_tensor(const Rgb8& img) {
  nn::Tensor t(3, img.height, img.width);
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x)
      for (int c = 0; c < 3; ++c)
        t.at(c, y, x) = img.pixels[(size_t(y) * img.width + x) * 3 + c] / 255.f;
  return t;
}

// Clamp to [0,1], times 255, rounded (as the golden references were made).
inline Rgb8 to_rgb8(const nn::Tensor& t) {
  Rgb8 img;
  img.width = t.width;
  img.height = t.height;
  img.pixels.resize(size_t(t.width) * t.height * 3);
  for (int y = 0; y < t.height; ++y)
    for (int x = 0; x < t.width; ++x)
      for (int c = 0; c < 3; ++c) {
        float v = std::min(std::max(t.at(c, y, x), 0.f), 1.f);
        img.pixels[(size_t(y) * t.width + x) * 3 + c] = uint8_t(std::lround(v * 255.f));
      }
  return img;
}

struct Comparison {
  double psnr = 0;
  int max_difference = 0;
};

inline Comparison compare(const Rgb8& a, const Rgb8& b) {
  Comparison r;
  double sse = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) {
    int d = int(a.pixels[i]) - int(b.pixels[i]);
    sse += double(d) * d;
    r.max_difference = std::max(r.max_difference, std::abs(d));
  }
  double mse = sse / a.pixels.size();
  r.psnr = mse == 0 ? 99.0 : 10 * std::log10(255.0 * 255.0 / mse);
  return r;
}

inline void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out << bytes;
}

// Little-endian fp32 words for a hand-made .bin.
inline std::string floats(const std::vector<float>& v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), v.data(), s.size());
  return s;
}
inline std::string flag_fp32() { return std::string(4, '\0'); }

}  // namespace upframe::test
