// Helpers for the nn tests: PNG <-> planar float tensors (through the ffmpeg CLI), image
// comparison, and writing hand-made ncnn models (their text: nn/model_text.hpp).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "nn/model_text.hpp"
#include "support/test_support.hpp"
#include "upframe/nn/model.hpp"
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

// `in` padded by reflection, `pad` pixels each side (as Real-CUGAN's ncnn graphs expect).
inline nn::Tensor reflect_padded(const nn::Tensor& in, int pad) {
  nn::Tensor padded(in.channels, in.height + 2 * pad, in.width + 2 * pad);
  auto reflect = [](int i, int n) { return i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i; };
  for (int c = 0; c < in.channels; ++c)
    for (int y = 0; y < padded.height; ++y)
      for (int x = 0; x < padded.width; ++x)
        padded.at(c, y, x) = in.at(c, reflect(y - pad, in.height), reflect(x - pad, in.width));
  return padded;
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

// The largest |a - b| of two tensors of the same size (a failure where the sizes differ).
inline float max_abs_difference(const nn::Tensor& a, const nn::Tensor& b) {
  EXPECT_EQ(a.data.size(), b.data.size());
  float worst = 0;
  for (size_t i = 0; i < std::min(a.data.size(), b.data.size()); ++i)
    worst = std::max(worst, std::abs(a.data[i] - b.data[i]));
  return worst;
}

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

// A hand-made model of `layers` and `bin` bytes, written to a scratch folder named `name`.
inline std::shared_ptr<const nn::Model> write_model(const std::string& name,
                                                    const std::vector<std::string>& layers,
                                                    const std::string& bin) {
  fs::path dir = scratch_dir(name);
  write_file(dir / "m.param", make_param(layers));
  write_file(dir / "m.bin", bin);
  return nn::Model::load(dir / "m.param", dir / "m.bin");
}

// A model of the source tree, by its .param path relative to it (the .bin beside it).
inline std::shared_ptr<const nn::Model> source_model(const std::string& param_path) {
  const fs::path param = source_dir() / param_path;
  return nn::Model::load(param, fs::path(param).replace_extension(".bin"));
}

// A shipped model, a golden input and the PyTorch reference output for it (tests/golden).
struct GoldenCase {
  std::string model_param;  // relative to the source tree
  std::string input;
  std::string reference;
};
// Keeps the test names ctest shows readable.
inline void PrintTo(const GoldenCase& c, std::ostream* os) { *os << c.model_param; }
// A test-name suffix: the model's file stem, non-alphanumerics as '_'.
inline std::string golden_case_name(const ::testing::TestParamInfo<GoldenCase>& info) {
  std::string n = fs::path(info.param.model_param).stem().string();
  for (char& ch : n)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n;
}

}  // namespace upframe::test
