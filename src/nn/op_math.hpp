// The per-element arithmetic of the neural-network ops, shared by the CPU (oneDNN) and CUDA
// backends so both compute the same thing: fused activations, BinaryOp kinds, and the
// resampling taps of Interp (computed on the host; the CUDA kernel applies the same taps).
// The element functions are plain C++ on floats, callable from CUDA kernels (UPFRAME_NN_HD).
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "graph.hpp"  // relative: tests include this header by path

#if defined(__CUDACC__)
#define UPFRAME_NN_HD __host__ __device__
#else
#define UPFRAME_NN_HD
#endif

namespace upframe::nn::math {

// An ActivationSpec in a form a kernel can take by value: the PReLU slopes are a pointer (host
// or device memory, whichever side applies it) and a count (1: one slope for every channel).
struct ActivationArgs {
  Activation type = Activation::kNone;
  float alpha = 0.f;  // LeakyReLU slope, Clip min
  float beta = 0.f;   // Clip max
  const float* slopes = nullptr;
  int slope_count = 0;
};

// The host form of `spec` (slopes pointing into the spec's own vector).
inline ActivationArgs activation_args(const ActivationSpec& spec) {
  return {spec.type, spec.alpha, spec.beta, spec.prelu_slopes.data(),
          int(spec.prelu_slopes.size())};
}

// max/min written as std::max/std::min are (same result for NaN and signed zeros on both sides).
UPFRAME_NN_HD inline float max_of(float a, float b) { return a < b ? b : a; }
UPFRAME_NN_HD inline float min_of(float a, float b) { return b < a ? b : a; }

UPFRAME_NN_HD inline float activate(const ActivationArgs& a, float v, int channel) {
  switch (a.type) {
    case Activation::kNone:
      return v;
    case Activation::kReLU:
      return v > 0.f ? v : 0.f;
    case Activation::kLeakyReLU:
      return v > 0.f ? v : v * a.alpha;
    case Activation::kClip:
      return min_of(max_of(v, a.alpha), a.beta);
    case Activation::kSigmoid:
      return 1.f / (1.f + expf(-v));
    case Activation::kMish:  // as PyTorch: exp overflowing to inf gives tanh(inf) = 1, so v
      return v * tanhf(log1pf(expf(v)));
    case Activation::kPReLU: {
      float s = a.slope_count == 1 ? a.slopes[0] : a.slopes[channel];
      return v > 0.f ? v : v * s;
    }
  }
  return v;
}

// A norm's affine weights as pointers (host or device memory); null gamma: no affine step.
struct NormWeights {
  const float* gamma = nullptr;
  const float* beta = nullptr;
};
inline NormWeights norm_weights(const NormParams& p) {
  return p.affine ? NormWeights{p.gamma.data(), p.beta.data()} : NormWeights{};
}

// GroupNorm and LayerNorm: v normalised by its group's (or pixel's) mean and 1/sqrt(var + eps),
// then scaled and shifted by channel c's weights.
UPFRAME_NN_HD inline float normalize(float v, float mean, float inv_std, const NormWeights& w,
                                     int c) {
  const float n = (v - mean) * inv_std;
  return w.gamma ? w.gamma[c] * n + w.beta[c] : n;
}

// DySample (DySampleParams) for output element idx of a plain NCHW channels x h*scale x
// w*scale output: the input channel, the low-resolution pixel and the offset channels read there.
struct DySampleGeometry {
  int channels, h, w, scale, groups;
};
struct DySamplePoint {
  int c, y, x, offset_x_channel, offset_y_channel;
};
UPFRAME_NN_HD inline DySamplePoint dysample_point(const DySampleGeometry& g, size_t idx) {
  const int out_w = g.w * g.scale, out_h = g.h * g.scale;
  const int X = int(idx % out_w), Y = int((idx / out_w) % out_h),
            c = int(idx / (size_t(out_w) * out_h));
  const int s2 = g.scale * g.scale;
  const int group = c / (g.channels / g.groups), k = (Y % g.scale) * g.scale + X % g.scale;
  return {c, Y / g.scale, X / g.scale, group * s2 + k, (g.groups + group) * s2 + k};
}

// Bilinear taps at (fx, fy) in a w x h image, the position first clamped to the image
// (grid_sample's border padding): rows y0, y1 and columns x0, x1 weighted 1 - wy, wy, 1 - wx, wx.
struct BilinearTaps {
  int x0, x1, y0, y1;
  float wx, wy;
};
UPFRAME_NN_HD inline BilinearTaps border_bilinear(float fx, float fy, int w, int h) {
  fx = min_of(max_of(fx, 0.f), float(w - 1));
  fy = min_of(max_of(fy, 0.f), float(h - 1));
  const int x0 = int(floorf(fx)), y0 = int(floorf(fy));
  return {
      x0, x0 + 1 < w ? x0 + 1 : x0, y0, y0 + 1 < h ? y0 + 1 : y0, fx - float(x0), fy - float(y0)};
}
UPFRAME_NN_HD inline float bilinear_mix(const BilinearTaps& t, float v00, float v01, float v10,
                                        float v11) {
  return (1.f - t.wy) * ((1.f - t.wx) * v00 + t.wx * v01) +
         t.wy * ((1.f - t.wx) * v10 + t.wx * v11);
}

UPFRAME_NN_HD inline float binary(BinaryKind k, float a, float b) {
  switch (k) {
    case BinaryKind::kAdd:
      return a + b;
    case BinaryKind::kSub:
      return a - b;
    case BinaryKind::kMul:
      return a * b;
    case BinaryKind::kDiv:
      return a / b;
    case BinaryKind::kMax:
      return max_of(a, b);
    case BinaryKind::kMin:
      return min_of(a, b);
    case BinaryKind::kPow:
      return powf(a, b);
    case BinaryKind::kRSub:
      return b - a;
    case BinaryKind::kRDiv:
      return b / a;
  }
  return a;
}

// Resampling taps along one axis: output i reads in[index[i*count + t]] * weight[i*count + t]
// for t < count. Applied rows first, then columns, each sum accumulated in tap order.
struct Taps {
  int count = 1;
  std::vector<int> index;
  std::vector<float> weight;
};

// ncnn's Interp along one axis of `in` -> `out` samples. Nearest: ncnn's floor of out * in/out,
// or of out / scale when the scale was given; bilinear and bicubic (A = -0.75, as ncnn and
// PyTorch): half-pixel centres, edge samples repeated. Host only.
inline Taps make_taps(ResizeType resize_type, int in, int out, float scale_param, bool size_given) {
  Taps t;
  auto clamp = [&](int i) { return std::min(std::max(i, 0), in - 1); };
  if (resize_type == ResizeType::kNearest) {
    float step = size_given ? float(in) / out : 1.f / scale_param;
    for (int i = 0; i < out; ++i) {
      t.index.push_back(std::min(int(i * step), in - 1));
      t.weight.push_back(1.f);
    }
    return t;
  }
  double scale = double(in) / out;
  if (resize_type == ResizeType::kBilinear) {
    t.count = 2;
    for (int i = 0; i < out; ++i) {
      float f = float((i + 0.5) * scale - 0.5);
      int s = int(std::floor(f));
      f -= s;
      if (s < 0) {
        s = 0;
        f = 0.f;
      }
      if (s >= in - 1) {
        s = in - 1;
        f = 0.f;
      }
      t.index.insert(t.index.end(), {s, clamp(s + 1)});
      t.weight.insert(t.weight.end(), {1.f - f, f});
    }
    return t;
  }
  t.count = 4;
  const float A = -0.75f;
  for (int i = 0; i < out; ++i) {
    float f = float((i + 0.5) * scale - 0.5);
    int s = int(std::floor(f));
    f -= s;
    float x0 = f + 1, x1 = f, x2 = 1 - f;
    float c0 = A * x0 * x0 * x0 - 5 * A * x0 * x0 + 8 * A * x0 - 4 * A;
    float c1 = (A + 2) * x1 * x1 * x1 - (A + 3) * x1 * x1 + 1;
    float c2 = (A + 2) * x2 * x2 * x2 - (A + 3) * x2 * x2 + 1;
    float c3 = 1.f - c0 - c1 - c2;
    t.index.insert(t.index.end(), {clamp(s - 1), clamp(s), clamp(s + 1), clamp(s + 2)});
    t.weight.insert(t.weight.end(), {c0, c1, c2, c3});
  }
  return t;
}

// The source sample of output sample i of a Padding along an axis of n input samples
// (i already shifted by the leading pad): -1 means outside (constant padding).
UPFRAME_NN_HD inline int padding_source(int i, int n, PaddingType type) {
  if (i >= 0 && i < n) return i;
  switch (type) {
    case PaddingType::kConstant:
      return -1;
    case PaddingType::kReplicate:
      return i < 0 ? 0 : n - 1;
    case PaddingType::kReflect:
      break;
  }
  return i < 0 ? -i : 2 * (n - 1) - i;
}

// PixelShuffle: the input channel that output channel p, sub-pixel (i, j) reads.
UPFRAME_NN_HD inline int pixelshuffle_source_channel(int p, int i, int j, int r, int out_channels,
                                                     PixelShuffleMode mode) {
  return mode == PixelShuffleMode::kPyTorch ? p * r * r + i * r + j
                                            : (i * r + j) * out_channels + p;
}

// Eltwise: the first input's term, then each later input x folded in (the sum weighted by
// `coefficient`, 1 without coefficients).
UPFRAME_NN_HD inline float eltwise_first(EltwiseKind kind, float x, float coefficient) {
  return kind == EltwiseKind::kSum ? x * coefficient : x;
}
UPFRAME_NN_HD inline float eltwise_fold(EltwiseKind kind, float v, float x, float coefficient) {
  switch (kind) {
    case EltwiseKind::kProduct:
      return v * x;
    case EltwiseKind::kSum:
      return v + x * coefficient;
    case EltwiseKind::kMax:
      break;
  }
  return max_of(v, x);
}

}  // namespace upframe::nn::math
