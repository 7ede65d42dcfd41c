// Hand-made ncnn models as text and bytes, and seeded random inputs and weights: what the op
// catalogue (nn/op_cases.hpp) needs. No gtest and no FFmpeg, so the device-check kit and its
// reference generator build the catalogue too.
#pragma once

#include <cstring>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "upframe/nn/tensor.hpp"

namespace upframe::test {

// Little-endian fp32 words for a hand-made .bin.
inline std::string floats(const std::vector<float>& v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), v.data(), s.size());
  return s;
}
inline std::string flag_fp32() { return std::string(4, '\0'); }

// The .param text for `layers` (layer and blob counts filled in from the lines).
inline std::string make_param(const std::vector<std::string>& layers) {
  std::set<std::string> blobs;
  for (const std::string& l : layers) {
    std::istringstream ls(l);
    std::string type, name, blob;
    int nin = 0, nout = 0;
    ls >> type >> name >> nin >> nout;
    for (int i = 0; i < nin + nout; ++i) {
      ls >> blob;
      if (i >= nin) blobs.insert(blob);
    }
  }
  std::string text =
      "7767517\n" + std::to_string(layers.size()) + " " + std::to_string(blobs.size()) + "\n";
  for (const std::string& l : layers) text += l + "\n";
  return text;
}

// Uniform in [-1, 1]: inputs for op tests.
inline nn::Tensor random_tensor(int c, int h, int w, unsigned seed = 7) {
  nn::Tensor t(c, h, w);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  for (float& v : t.data) v = d(rng);
  return t;
}

// Uniform in [-scale, scale]: weights for op tests.
inline std::vector<float> random_values(size_t n, unsigned seed, float scale = 0.3f) {
  std::vector<float> v(n);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-scale, scale);
  for (float& x : v) x = d(rng);
  return v;
}

}  // namespace upframe::test
