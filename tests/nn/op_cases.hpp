// The op catalogue: every op type on a small hand-made graph (.param lines + .bin bytes + an
// input) with the formula its output must follow. Run by the CPU tests against the formulas,
// swept over the blob layouts and convolution band sizes the CPU executor uses
// (tests/nn/op_cases_test.cpp), by the CUDA tests against the CPU
// (tests/cuda/nn_op_cases_test.cpp) and by the device-check kit against the CPU outputs its
// reference files carry (tools/device-check). A new op adds its cases here. No gtest here.
//
// Conventions: the first layer is "Input in 0 1 data 2=C" (C = the input's channels), the
// output blob is "out" and an image.
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "nn/model_text.hpp"
#include "upframe/nn/tensor.hpp"

namespace upframe::test::op_cases {

using nn::Tensor;

struct OpCase {
  std::string name;
  std::vector<std::string> layers;
  std::string bin;
  Tensor input;
  std::function<Tensor(const Tensor&)> formula;  // the expected output for an input
  float tolerance = 1e-4f;                       // fp32 against the formula
  float fp16_tolerance = 2e-2f;                  // CUDA fp16 storage against the CPU
};

// Direct convolution, ncnn weight order [out][in/groups][kh][kw].
inline Tensor ref_conv(const Tensor& in, const std::vector<float>& w,
                       const std::vector<float>& bias, int out_c, int k, int stride, int dilation,
                       int pad_l, int pad_t, int out_h, int out_w, int groups = 1) {
  Tensor out(out_c, out_h, out_w);
  int in_per_group = in.channels / groups, out_per_group = out_c / groups;
  for (int o = 0; o < out_c; ++o)
    for (int y = 0; y < out_h; ++y)
      for (int x = 0; x < out_w; ++x) {
        double acc = bias.empty() ? 0 : bias[o];
        int g = o / out_per_group;
        for (int i = 0; i < in_per_group; ++i)
          for (int ky = 0; ky < k; ++ky)
            for (int kx = 0; kx < k; ++kx) {
              int sy = y * stride + ky * dilation - pad_t, sx = x * stride + kx * dilation - pad_l;
              if (sy < 0 || sx < 0 || sy >= in.height || sx >= in.width) continue;
              acc += double(w[((size_t(o) * in_per_group + i) * k + ky) * k + kx]) *
                     in.at(g * in_per_group + i, sy, sx);
            }
        out.at(o, y, x) = float(acc);
      }
  return out;
}

// ncnn Deconvolution: out[y*s + ky - pad][x*s + kx - pad] += in[y][x] * w[o][i][ky][kx].
inline Tensor ref_deconv(const Tensor& in, const std::vector<float>& w,
                         const std::vector<float>& bias, int out_c, int k, int s, int pad) {
  int full_h = (in.height - 1) * s + k, full_w = (in.width - 1) * s + k;
  Tensor out(out_c, full_h - 2 * pad, full_w - 2 * pad);
  for (int o = 0; o < out_c; ++o)
    for (int y = 0; y < out.height; ++y)
      for (int x = 0; x < out.width; ++x) out.at(o, y, x) = bias.empty() ? 0 : bias[o];
  for (int o = 0; o < out_c; ++o)
    for (int i = 0; i < in.channels; ++i)
      for (int y = 0; y < in.height; ++y)
        for (int x = 0; x < in.width; ++x)
          for (int ky = 0; ky < k; ++ky)
            for (int kx = 0; kx < k; ++kx) {
              int oy = y * s + ky - pad, ox = x * s + kx - pad;
              if (oy < 0 || ox < 0 || oy >= out.height || ox >= out.width) continue;
              out.at(o, oy, ox) +=
                  in.at(i, y, x) * w[((size_t(o) * in.channels + i) * k + ky) * k + kx];
            }
  return out;
}

inline double cubic(double x) {  // Keys kernel, A = -0.75 (PyTorch and ncnn)
  const double A = -0.75;
  x = std::abs(x);
  if (x <= 1) return ((A + 2) * x - (A + 3)) * x * x + 1;
  if (x < 2) return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
  return 0;
}

// PyTorch F.interpolate(mode="bicubic" / "bilinear", align_corners=False), edges clamped.
inline Tensor ref_resize(const Tensor& in, int out_h, int out_w, bool bicubic_mode) {
  Tensor out(in.channels, out_h, out_w);
  double sy = double(in.height) / out_h, sx = double(in.width) / out_w;
  auto clampi = [](int v, int n) { return std::min(std::max(v, 0), n - 1); };
  for (int c = 0; c < in.channels; ++c)
    for (int y = 0; y < out_h; ++y)
      for (int x = 0; x < out_w; ++x) {
        double fy = (y + 0.5) * sy - 0.5, fx = (x + 0.5) * sx - 0.5;
        double acc = 0;
        if (bicubic_mode) {
          int y0 = int(std::floor(fy)), x0 = int(std::floor(fx));
          for (int j = -1; j <= 2; ++j)
            for (int i = -1; i <= 2; ++i)
              acc += cubic(fy - (y0 + j)) * cubic(fx - (x0 + i)) *
                     in.at(c, clampi(y0 + j, in.height), clampi(x0 + i, in.width));
        } else {
          fy = std::max(fy, 0.0);
          fx = std::max(fx, 0.0);
          int y0 = std::min(int(fy), in.height - 1), x0 = std::min(int(fx), in.width - 1);
          double ty = fy - y0, tx = fx - x0;
          int y1 = clampi(y0 + 1, in.height), x1 = clampi(x0 + 1, in.width);
          acc = (1 - ty) * ((1 - tx) * in.at(c, y0, x0) + tx * in.at(c, y0, x1)) +
                ty * ((1 - tx) * in.at(c, y1, x0) + tx * in.at(c, y1, x1));
        }
        out.at(c, y, x) = float(acc);
      }
  return out;
}

// `f` applied to every value.
inline Tensor map_values(Tensor t, const std::function<float(float, int)>& f) {
  for (int c = 0; c < t.channels; ++c)
    for (int y = 0; y < t.height; ++y)
      for (int x = 0; x < t.width; ++x) t.at(c, y, x) = f(t.at(c, y, x), c);
  return t;
}
inline float sigmoid(float v) { return float(1 / (1 + std::exp(-double(v)))); }

// One value per output pixel computed from the input pixel(s) of the same channel.
inline Tensor make_image(int c, int h, int w, const std::function<float(int, int, int)>& f) {
  Tensor t(c, h, w);
  for (int ch = 0; ch < c; ++ch)
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) t.at(ch, y, x) = f(ch, y, x);
  return t;
}

inline std::string input_layer(int channels) {
  return "Input in 0 1 data 2=" + std::to_string(channels);
}

inline std::vector<OpCase> convolution_cases() {
  std::vector<OpCase> cases;
  {
    auto w = random_values(8 * 4 * 9, 21), b = random_values(8, 22);
    cases.push_back({"conv3x3_bias_relu",
                     {input_layer(4), "Convolution c 1 1 data out 0=8 1=3 4=1 5=1 6=288 9=1"},
                     flag_fp32() + floats(w) + floats(b),
                     random_tensor(4, 9, 13, 1),
                     [=](const Tensor& in) {
                       return map_values(ref_conv(in, w, b, 8, 3, 1, 1, 1, 1, 9, 13),
                                         [](float v, int) { return std::max(v, 0.f); });
                     }});
    // stride 2, SAME_UPPER (-233): out = ceil(in / 2); total padding 2 (h: 11 -> 6), 1 (w: 14
    // -> 7), so cuDNN reads a padded copy.
    cases.push_back({"conv_same_stride2",
                     {input_layer(4), "Convolution c 1 1 data out 0=8 1=3 3=2 4=-233 5=1 6=288"},
                     flag_fp32() + floats(w) + floats(b),
                     random_tensor(4, 11, 14, 2),
                     [=](const Tensor& in) { return ref_conv(in, w, b, 8, 3, 2, 1, 0, 1, 6, 7); }});
    cases.push_back({"conv_dilated_clip",
                     {input_layer(4),
                      "Convolution c 1 1 data out 0=8 1=3 2=2 4=2 5=1 6=288 9=3 "
                      "-23310=2,-1.000000e-01,2.000000e-01"},
                     flag_fp32() + floats(w) + floats(b),
                     random_tensor(4, 11, 14, 3),
                     [=](const Tensor& in) {
                       return map_values(
                           ref_conv(in, w, b, 8, 3, 1, 2, 2, 2, 11, 14),
                           [](float v, int) { return std::min(std::max(v, -0.1f), 0.2f); });
                     }});
  }
  {
    auto w = random_values(8 * 2 * 9, 23);
    cases.push_back(
        {"conv_groups",
         {input_layer(4), "ConvolutionDepthWise c 1 1 data out 0=8 1=3 4=1 6=144 7=2"},
         flag_fp32() + floats(w),
         random_tensor(4, 11, 14, 4),
         [=](const Tensor& in) { return ref_conv(in, w, {}, 8, 3, 1, 1, 1, 1, 11, 14, 2); }});
  }
  {
    // 32 channels, 5x5: wide enough for oneDNN's nhwc kernels, so the banded path runs.
    auto w = random_values(32 * 16 * 25, 24, 0.1f);
    auto slopes = random_values(32, 25, 1.f);
    cases.push_back({"conv5x5_prelu_banded",
                     {input_layer(16), "Convolution c 1 1 data a 0=32 1=5 4=2 6=12800",
                      "PReLU p 1 1 a out 0=32"},
                     flag_fp32() + floats(w) + floats(slopes),
                     random_tensor(16, 11, 19, 5),
                     [=](const Tensor& in) {
                       return map_values(ref_conv(in, w, {}, 32, 5, 1, 1, 2, 2, 11, 19),
                                         [=](float v, int c) { return v > 0 ? v : v * slopes[c]; });
                     },
                     1e-4f,
                     5e-2f});
  }
  {
    auto w = random_values(3 * 4 * 16, 11), b = random_values(3, 12);
    cases.push_back({"deconv4_stride2_pad3",
                     {input_layer(4), "Deconvolution dc 1 1 data out 0=3 1=4 3=2 4=3 5=1 6=192"},
                     flag_fp32() + floats(w) + floats(b),
                     random_tensor(4, 7, 9, 6),
                     [=](const Tensor& in) { return ref_deconv(in, w, b, 3, 4, 2, 3); }});
    auto w2 = random_values(8 * 4 * 4, 13);
    cases.push_back({"deconv2_relu",
                     {input_layer(4), "Deconvolution dc 1 1 data out 0=8 1=2 3=2 6=128 9=1"},
                     flag_fp32() + floats(w2),
                     random_tensor(4, 7, 9, 7),
                     [=](const Tensor& in) {
                       return map_values(ref_deconv(in, w2, {}, 8, 2, 2, 0),
                                         [](float v, int) { return std::max(v, 0.f); });
                     }});
  }
  return cases;
}

inline std::vector<OpCase> element_cases() {
  std::vector<OpCase> cases;
  const auto slopes = random_values(5, 31, 1.f);
  cases.push_back({"prelu",
                   {input_layer(5), "PReLU p 1 1 data out 0=5"},
                   floats(slopes),
                   random_tensor(5, 6, 7, 8),
                   [=](const Tensor& in) {
                     return map_values(in,
                                       [=](float v, int c) { return v > 0 ? v : v * slopes[c]; });
                   }});
  cases.push_back({"leaky_relu",
                   {input_layer(3), "ReLU r 1 1 data out 0=1.000000e-01"},
                   "",
                   random_tensor(3, 6, 7, 9),
                   [](const Tensor& in) {
                     return map_values(in, [](float v, int) { return v > 0 ? v : v * 0.1f; });
                   }});
  cases.push_back(
      {"sigmoid",
       {input_layer(3), "Sigmoid s 1 1 data out"},
       "",
       random_tensor(3, 6, 7, 10),
       [](const Tensor& in) { return map_values(in, [](float v, int) { return sigmoid(v); }); },
       1e-6f});
  // BinaryOp of an image with its own sigmoid: sub (same shape), then rsub with a scalar.
  cases.push_back({"binaryop_same_shape_and_scalar",
                   {input_layer(3), "Split sp 1 2 data a b", "Sigmoid s 1 1 b sb",
                    "BinaryOp sub 2 1 a sb d 0=1", "BinaryOp rs 1 1 d out 0=7 1=1 2=1.5"},
                   "",
                   random_tensor(3, 6, 7, 11),
                   [](const Tensor& in) {
                     return map_values(in, [](float v, int) { return 1.5f - (v - sigmoid(v)); });
                   },
                   1e-6f});
  // Eltwise of the image, its sigmoid and its ReLU, in each kind.
  const std::vector<std::string> eltwise_lines = {input_layer(4), "Split sp 1 3 data a b d",
                                                  "Sigmoid s 1 1 b sb", "ReLU r 1 1 d rd"};
  for (auto [kind, args] : {std::pair{0, "0=0"}, std::pair{1, "0=1 -23301=3,5.000000e-01,-2.0,1.5"},
                            std::pair{2, "0=2"}}) {
    std::vector<std::string> lines = eltwise_lines;
    lines.push_back(std::string("Eltwise e 3 1 a sb rd out ") + args);
    const int k = kind;
    cases.push_back({"eltwise_" + std::to_string(kind), lines, "", random_tensor(4, 6, 7, 12),
                     [k](const Tensor& in) {
                       return map_values(in, [k](float v, int) {
                         const float s = sigmoid(v), r = std::max(v, 0.f);
                         if (k == 0) return v * s * r;
                         if (k == 1) return 0.5f * v - 2.f * s + 1.5f * r;
                         return std::max(std::max(v, s), r);
                       });
                     },
                     1e-6f});
  }
  return cases;
}

inline std::vector<OpCase> layout_cases() {
  std::vector<OpCase> cases;
  for (int mode : {0, 1})
    cases.push_back({"pixelshuffle_mode" + std::to_string(mode),
                     {input_layer(8), "PixelShuffle ps 1 1 data out 0=2 1=" + std::to_string(mode)},
                     "",
                     random_tensor(8, 5, 6, 13),
                     [mode](const Tensor& in) {
                       return make_image(2, 10, 12, [&](int c, int y, int x) {
                         const int sub = (y % 2) * 2 + x % 2;
                         return in.at(mode == 0 ? c * 4 + sub : sub * 2 + c, y / 2, x / 2);
                       });
                     },
                     0.f});
  cases.push_back({"interp_nearest",
                   {input_layer(3), "Interp up 1 1 data out 0=1 1=3.0 2=2.0"},
                   "",
                   random_tensor(3, 10, 14, 14),
                   [](const Tensor& in) {
                     return make_image(3, 30, 28,
                                       [&](int c, int y, int x) { return in.at(c, y / 3, x / 2); });
                   },
                   0.f});
  cases.push_back({"interp_bilinear",
                   {input_layer(3), "Interp up 1 1 data out 0=2 1=2.0 2=3.0"},
                   "",
                   random_tensor(3, 10, 14, 15),
                   [](const Tensor& in) { return ref_resize(in, 20, 42, false); },
                   2e-5f});
  cases.push_back({"interp_bicubic_down",
                   {input_layer(3), "Interp up 1 1 data out 0=3 1=7.500000e-01 2=7.500000e-01"},
                   "",
                   random_tensor(3, 18, 24, 16),
                   [](const Tensor& in) { return ref_resize(in, 13, 18, true); },
                   2e-5f});
  cases.push_back({"concat",
                   {input_layer(3), "Split sp 1 2 data a b", "Sigmoid s 1 1 b sb",
                    "Concat cat 2 1 a sb out 0=0"},
                   "",
                   random_tensor(3, 6, 7, 17),
                   [](const Tensor& in) {
                     return make_image(6, 6, 7, [&](int c, int y, int x) {
                       return c < 3 ? in.at(c, y, x) : sigmoid(in.at(c - 3, y, x));
                     });
                   },
                   1e-6f});
  cases.push_back({"crop_offsets",
                   {input_layer(5), "Crop crop 1 1 data out 0=1 1=2 2=1 3=6 4=4 5=3"},
                   "",
                   random_tensor(5, 11, 12, 18),
                   [](const Tensor& in) {
                     return make_image(
                         3, 4, 6, [&](int c, int y, int x) { return in.at(c + 1, y + 2, x + 1); });
                   },
                   0.f});
  cases.push_back({"crop_slice",
                   {input_layer(5), "Crop crop 1 1 data out -23309=3,1,2,1 -23310=3,4,-2,-3"},
                   "",
                   random_tensor(5, 11, 12, 19),
                   [](const Tensor& in) {
                     return make_image(
                         3, 7, 8, [&](int c, int y, int x) { return in.at(c + 1, y + 2, x + 1); });
                   },
                   0.f});
  // Channel crops put back together (RealPLKSR's partial convolution): 24 channels, wide
  // enough that after a convolution they are nhwc (the per-pixel crop and concat).
  cases.push_back(
      {"crop_channels_concat",
       {input_layer(24), "Split sp 1 2 data a b", "Crop c1 1 1 a lo 2=0 5=8",
        "Crop c2 1 1 b hi 2=8 5=16", "Sigmoid s 1 1 lo slo", "Concat cat 2 1 hi slo out 0=0"},
       "",
       random_tensor(24, 5, 7, 49),
       [](const Tensor& in) {
         return make_image(24, 5, 7, [&](int c, int y, int x) {
           return c < 16 ? in.at(c + 8, y, x) : sigmoid(in.at(c - 16, y, x));
         });
       },
       1e-6f});
  for (int type : {0, 1, 2})
    cases.push_back({"padding_type" + std::to_string(type),
                     {input_layer(5), "Padding pad 1 1 data out 0=2 1=3 2=4 3=1 4=" +
                                          std::to_string(type) + " 5=2.500000e-01"},
                     "",
                     random_tensor(5, 11, 12, 20),
                     [type](const Tensor& in) {
                       auto source = [&](int i, int n) {
                         if (i >= 0 && i < n) return i;
                         if (type == 0) return -1;
                         if (type == 1) return i < 0 ? 0 : n - 1;
                         return i < 0 ? -i : 2 * (n - 1) - i;
                       };
                       return make_image(5, 16, 17, [&](int c, int y, int x) {
                         const int sy = source(y - 2, 11), sx = source(x - 4, 12);
                         return sy < 0 || sx < 0 ? 0.25f : in.at(c, sy, sx);
                       });
                     },
                     0.f});
  return cases;
}

// Global pooling, InnerProduct and the per-channel broadcast of BinaryOp, as in a
// squeeze-excitation block (Real-CUGAN).
inline std::vector<OpCase> reduction_cases() {
  std::vector<OpCase> cases;
  cases.push_back({"pooling_max_broadcast_add",
                   {input_layer(5), "Split sp 1 2 data a b", "Pooling gmp 1 1 b g 0=0 4=1",
                    "BinaryOp add 2 1 a g out 0=0"},
                   "",
                   random_tensor(5, 7, 9, 21),
                   [](const Tensor& in) {
                     std::vector<float> best(5, -INFINITY);
                     for (int c = 0; c < 5; ++c)
                       for (float v : std::vector<float>(in.plane(c), in.plane(c) + 63))
                         best[c] = std::max(best[c], v);
                     return map_values(in, [=](float v, int c) { return v + best[c]; });
                   },
                   1e-6f});
  auto w1 = random_values(2 * 6, 32), b1 = random_values(2, 33);
  auto w2 = random_values(6 * 2, 34), b2 = random_values(6, 35);
  cases.push_back({"se_block",
                   {input_layer(6), "Split sp 1 2 data a b", "Pooling gap 1 1 b g 0=1 4=1",
                    "InnerProduct fc1 1 1 g f1 0=2 1=1 2=12 9=1",
                    "InnerProduct fc2 1 1 f1 f2 0=6 1=1 2=12 9=4", "BinaryOp mul 2 1 f2 a out 0=2"},
                   flag_fp32() + floats(w1) + floats(b1) + flag_fp32() + floats(w2) + floats(b2),
                   random_tensor(6, 7, 9, 22),
                   [=](const Tensor& in) {
                     std::vector<double> pooled(6), f1(2), f2(6);
                     for (int c = 0; c < 6; ++c) {
                       for (int i = 0; i < 63; ++i) pooled[c] += in.plane(c)[i];
                       pooled[c] /= 63;
                     }
                     for (int o = 0; o < 2; ++o) {
                       double acc = b1[o];
                       for (int i = 0; i < 6; ++i) acc += w1[o * 6 + i] * pooled[i];
                       f1[o] = std::max(acc, 0.0);
                     }
                     for (int o = 0; o < 6; ++o) {
                       double acc = b2[o];
                       for (int i = 0; i < 2; ++i) acc += w2[o * 2 + i] * f1[i];
                       f2[o] = 1 / (1 + std::exp(-acc));
                     }
                     return map_values(in, [=](float v, int c) { return float(f2[c] * v); });
                   },
                   1e-5f});
  return cases;
}

// Mish, GroupNorm, the channel LayerNorm (RealPLKSR's blocks) and DySample (its upsampler).
inline std::vector<OpCase> norm_cases() {
  std::vector<OpCase> cases;
  cases.push_back({"mish",
                   {input_layer(4), "Mish m 1 1 data out"},
                   "",
                   map_values(random_tensor(4, 6, 7, 41), [](float v, int) { return v * 6; }),
                   [](const Tensor& in) {
                     return map_values(in, [](float v, int) {
                       return float(v * std::tanh(std::log1p(std::exp(double(v)))));
                     });
                   },
                   1e-5f});
  // Means and spreads that differ by group and by pixel, so the statistics' extent is tested.
  auto shifted = [](int c, int h, int w, unsigned seed) {
    Tensor t = random_tensor(c, h, w, seed);
    return map_values(t, [](float v, int ch) { return v * (1.f + ch) + 0.5f * float(ch); });
  };
  const auto gamma = random_values(6, 42, 1.f), beta = random_values(6, 43, 1.f);
  cases.push_back({"groupnorm_2_groups",
                   {input_layer(6), "GroupNorm gn 1 1 data out 0=2 1=6 2=1.000000e-05 3=1"},
                   floats(gamma) + floats(beta),
                   shifted(6, 7, 9, 44),
                   [=](const Tensor& in) {
                     Tensor out = in;
                     for (int g = 0; g < 2; ++g) {
                       double sum = 0, squares = 0;
                       const size_t n = size_t(3) * in.height * in.width;
                       for (int c = 3 * g; c < 3 * g + 3; ++c)
                         for (int i = 0; i < in.height * in.width; ++i) sum += in.plane(c)[i];
                       const double mean = sum / double(n);
                       for (int c = 3 * g; c < 3 * g + 3; ++c)
                         for (int i = 0; i < in.height * in.width; ++i)
                           squares += (in.plane(c)[i] - mean) * (in.plane(c)[i] - mean);
                       const double inv_std = 1 / std::sqrt(squares / double(n) + 1e-5);
                       for (int c = 3 * g; c < 3 * g + 3; ++c)
                         for (int i = 0; i < in.height * in.width; ++i)
                           out.plane(c)[i] =
                               float(gamma[c] * (in.plane(c)[i] - mean) * inv_std + beta[c]);
                     }
                     return out;
                   }});
  cases.push_back({"layernorm_channels",
                   {input_layer(6), "LayerNorm ln 1 1 data out 0=6 1=1.000000e-06 2=1 3=1"},
                   floats(gamma) + floats(beta),
                   shifted(6, 7, 9, 45),
                   [=](const Tensor& in) {
                     Tensor out = in;
                     for (int y = 0; y < in.height; ++y)
                       for (int x = 0; x < in.width; ++x) {
                         double sum = 0, squares = 0;
                         for (int c = 0; c < 6; ++c) sum += in.at(c, y, x);
                         const double mean = sum / 6;
                         for (int c = 0; c < 6; ++c)
                           squares += (in.at(c, y, x) - mean) * (in.at(c, y, x) - mean);
                         const double inv_std = 1 / std::sqrt(squares / 6 + 1e-6);
                         for (int c = 0; c < 6; ++c)
                           out.at(c, y, x) =
                               float(gamma[c] * (in.at(c, y, x) - mean) * inv_std + beta[c]);
                       }
                     return out;
                   }});
  // DySample x2, 2 groups of 2 channels, offsets from a 1x1 convolution of the image reaching
  // up to ~2 pixels (so many samples clamp at the border).
  const auto ow = random_values(16 * 4, 46, 1.2f), ob = random_values(16, 47, 0.5f);
  cases.push_back(
      {"dysample_x2_2_groups",
       {input_layer(4), "Split sp 1 2 data a b", "Convolution off 1 1 b o 0=16 1=1 5=1 6=64",
        "DySample ds 2 1 a o out 0=2 1=2"},
       flag_fp32() + floats(ow) + floats(ob),
       random_tensor(4, 5, 6, 48),
       [=](const Tensor& in) {
         const Tensor off = ref_conv(in, ow, ob, 16, 1, 1, 1, 0, 0, 5, 6);
         return make_image(4, 10, 12, [&](int c, int y, int x) {
           const int g = c / 2, k = (y % 2) * 2 + x % 2;
           const double fx = std::clamp(x / 2 + double(off.at(g * 4 + k, y / 2, x / 2)), 0.0, 5.0);
           const double fy =
               std::clamp(y / 2 + double(off.at((2 + g) * 4 + k, y / 2, x / 2)), 0.0, 4.0);
           const int x0 = int(std::floor(fx)), y0 = int(std::floor(fy));
           const int x1 = std::min(x0 + 1, 5), y1 = std::min(y0 + 1, 4);
           const double wx = fx - x0, wy = fy - y0;
           return float((1 - wy) * ((1 - wx) * in.at(c, y0, x0) + wx * in.at(c, y0, x1)) +
                        wy * ((1 - wx) * in.at(c, y1, x0) + wx * in.at(c, y1, x1)));
         });
       }});
  return cases;
}

// Every case, every op type at least once.
inline std::vector<OpCase> all_cases() {
  std::vector<OpCase> cases;
  for (auto part :
       {convolution_cases(), element_cases(), layout_cases(), reduction_cases(), norm_cases()})
    cases.insert(cases.end(), part.begin(), part.end());
  return cases;
}

// The same case with its input first through an identity 1x1 convolution (exact in fp32), so
// the op under test reads a blob in the layout oneDNN picks for a convolution's output (nhwc
// or channel-blocked) rather than the plain input; an activation right after is then folded
// into that convolution, which is a path of its own.
inline OpCase through_identity_convolution(OpCase c) {
  const int channels = c.input.channels;
  std::vector<float> identity(size_t(channels) * channels, 0.f);
  for (int i = 0; i < channels; ++i) identity[size_t(i) * channels + i] = 1.f;
  c.layers[0] = "Input in 0 1 data0 2=" + std::to_string(channels);
  c.layers.insert(c.layers.begin() + 1,
                  "Convolution identity 1 1 data0 data 0=" + std::to_string(channels) +
                      " 1=1 6=" + std::to_string(channels * channels));
  c.bin = flag_fp32() + floats(identity) + c.bin;
  c.name += "_after_conv";
  return c;
}

}  // namespace upframe::test::op_cases
