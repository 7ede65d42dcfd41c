// The exchange format at the neural network's boundary: one image, planar float, channels x
// height x width (RGB in [0,1] for the Real-ESRGAN family).
#pragma once

#include <cstddef>
#include <vector>

namespace upframe::nn {

struct Tensor {
  int channels = 0;
  int height = 0;
  int width = 0;
  std::vector<float> data;  // channels * height * width, plane after plane

  Tensor() = default;
  Tensor(int c, int h, int w) : channels(c), height(h), width(w), data(size_t(c) * h * w) {}
  float* plane(int c) { return data.data() + size_t(c) * height * width; }
  const float* plane(int c) const { return data.data() + size_t(c) * height * width; }
  float& at(int c, int y, int x) { return data[(size_t(c) * height + y) * width + x]; }
  float at(int c, int y, int x) const { return data[(size_t(c) * height + y) * width + x]; }
};

enum class Precision { kFp32, kBf16, kFp16 };
const char* precision_name(Precision p);

}  // namespace upframe::nn
