// What one CUDA thread computes for one output value of the index-heavy ops (deconvolution,
// pixel shuffle, resampling, crop, padding, eltwise), as plain host/device functions of the
// flat NCHW output index. The kernels (kernels.cuh) are loops around these; the CPU test
// tests/nn/cuda_element_ops_test.cpp runs them on the host (T = float) against the CPU executor.
// Includes are relative so tests can include this header by path.
#pragma once

#include <cstddef>
#include <utility>

#include "../graph.hpp"
#include "../op_math.hpp"

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#endif

namespace upframe::nn::cuda {

// Storage -> fp32 arithmetic.
UPFRAME_NN_HD inline float load(float v) { return v; }
#if defined(__CUDACC__)
__device__ inline float load(__half v) { return __half2float(v); }
#endif

// Channel, row and column of flat index `idx` in a C x h x w image.
struct Position {
  int c, y, x;
};
UPFRAME_NN_HD inline Position position_of(size_t idx, int h, int w) {
  return {int(idx / (size_t(w) * h)), int((idx / w) % h), int(idx % w)};
}

struct DeconvGeometry {
  int in_c, in_h, in_w, out_c, out_h, out_w;
  int kernel_h, kernel_w, stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left;
  int groups;
};

// The geometry of a Deconvolution op for its input and output shapes (host).
inline DeconvGeometry deconv_geometry(const ConvParams& c, const Shape& in, const Shape& out) {
  return {in.c,         in.h,         in.w,       out.c,      out.h,
          out.w,        c.kernel_h,   c.kernel_w, c.stride_h, c.stride_w,
          c.dilation_h, c.dilation_w, c.pad_top,  c.pad_left, c.groups};
}

// ncnn Deconvolution as a gather: out[o][oy][ox] = bias[o] + the sum over the group's inputs i
// and taps (ky, kx) with oy = iy*stride + ky*dilation - pad_top (same for x) of
// in[i][iy][ix] * w[g][o'][i'][ky][kx] (ncnn's weight order, applied unflipped), activated.
template <typename T>
UPFRAME_NN_HD inline float deconv_element(const T* in, const T* w, const float* bias,
                                          const math::ActivationArgs& act, const DeconvGeometry& g,
                                          size_t idx) {
  const Position p = position_of(idx, g.out_h, g.out_w);
  const int in_per_group = g.in_c / g.groups, out_per_group = g.out_c / g.groups;
  const int group = p.c / out_per_group, o_local = p.c % out_per_group;
  float acc = bias ? bias[p.c] : 0.f;
  for (int ky = 0; ky < g.kernel_h; ++ky) {
    const int ty = p.y + g.pad_top - ky * g.dilation_h;
    if (ty < 0 || ty % g.stride_h != 0) continue;
    const int iy = ty / g.stride_h;
    if (iy >= g.in_h) continue;
    for (int kx = 0; kx < g.kernel_w; ++kx) {
      const int tx = p.x + g.pad_left - kx * g.dilation_w;
      if (tx < 0 || tx % g.stride_w != 0) continue;
      const int ix = tx / g.stride_w;
      if (ix >= g.in_w) continue;
      for (int i = 0; i < in_per_group; ++i) {
        const int channel = group * in_per_group + i;
        const size_t wi =
            (((size_t(group) * out_per_group + o_local) * in_per_group + i) * g.kernel_h + ky) *
                g.kernel_w +
            kx;
        acc += load(in[(size_t(channel) * g.in_h + iy) * g.in_w + ix]) * load(w[wi]);
      }
    }
  }
  return math::activate(act, acc, p.c);
}

// PixelShuffle: the input index that output `idx` copies (output out_c x in_h*r x in_w*r).
UPFRAME_NN_HD inline size_t pixelshuffle_source(size_t idx, int out_c, int in_h, int in_w, int r,
                                                PixelShuffleMode mode) {
  const Position p = position_of(idx, in_h * r, in_w * r);
  const int q = math::pixelshuffle_source_channel(p.c, p.y % r, p.x % r, r, out_c, mode);
  return (size_t(q) * in_h + p.y / r) * in_w + p.x / r;
}

// Separable resampling with host-made taps (math::make_taps), summed as the CPU does: each
// source row's horizontal sum in tap order, then those rows in tap order.
struct ResampleTaps {
  const int* x_index;
  const float* x_weight;
  int x_count;
  const int* y_index;
  const float* y_weight;
  int y_count;
};
// The horizontal and vertical taps of an Interp op (host; the executor uploads them).
inline std::pair<math::Taps, math::Taps> interp_taps(const InterpParams& p, const Shape& in,
                                                     const Shape& out) {
  const bool sized = p.output_height != 0 && p.output_width != 0;
  return {math::make_taps(p.resize_type, in.w, out.w, p.width_scale, sized),
          math::make_taps(p.resize_type, in.h, out.h, p.height_scale, sized)};
}

template <typename T>
UPFRAME_NN_HD inline float resample_element(const T* in, int in_h, int in_w, int out_h, int out_w,
                                            const ResampleTaps& t, size_t idx) {
  const Position p = position_of(idx, out_h, out_w);
  const T* plane = in + size_t(p.c) * in_h * in_w;
  float acc = 0.f;
  for (int ty = 0; ty < t.y_count; ++ty) {
    const T* row = plane + size_t(t.y_index[p.y * t.y_count + ty]) * in_w;
    float mid = 0.f;
    for (int tx = 0; tx < t.x_count; ++tx)
      mid += load(row[t.x_index[p.x * t.x_count + tx]]) * t.x_weight[p.x * t.x_count + tx];
    acc += mid * t.y_weight[p.y * t.y_count + ty];
  }
  return acc;
}

// Crop: the input index that output `idx` (out_c x out_h x out_w) copies.
UPFRAME_NN_HD inline size_t crop_source(size_t idx, int in_h, int in_w, int coffset, int hoffset,
                                        int woffset, int out_h, int out_w) {
  const Position p = position_of(idx, out_h, out_w);
  return (size_t(p.c + coffset) * in_h + p.y + hoffset) * in_w + p.x + woffset;
}

// Padding: the input index output `idx` copies, or -1 for the constant.
UPFRAME_NN_HD inline long long padding_source_index(size_t idx, int in_h, int in_w, int top,
                                                    int left, PaddingType type, int out_h,
                                                    int out_w) {
  const Position p = position_of(idx, out_h, out_w);
  const int sy = math::padding_source(p.y - top, in_h, type);
  const int sx = math::padding_source(p.x - left, in_w, type);
  if (sy < 0 || sx < 0) return -1;
  return (long long)((size_t(p.c) * in_h + sy) * in_w + sx);
}

constexpr int kMaxEltwiseInputs = 16;
template <typename T>
struct EltwiseInputs {
  const T* data[kMaxEltwiseInputs];
  float coefficient[kMaxEltwiseInputs];
  int count;
};

// ncnn Eltwise, in input order as the CPU.
template <typename T>
UPFRAME_NN_HD inline float eltwise_element(const EltwiseInputs<T>& ins, EltwiseKind kind,
                                           size_t i) {
  float v = math::eltwise_first(kind, load(ins.data[0][i]), ins.coefficient[0]);
  for (int k = 1; k < ins.count; ++k)
    v = math::eltwise_fold(kind, v, load(ins.data[k][i]), ins.coefficient[k]);
  return v;
}

}  // namespace upframe::nn::cuda
