// CUDA kernels of the neural-network ops other than the cuDNN convolutions. Blobs are plain
// NCHW (a vector is 1x1xW) in storage type T (float or __half); arithmetic is fp32. The
// per-element formulas come from nn/op_math.hpp (shared with the CPU backend) and the per-output
// index arithmetic from element_ops.hpp (tested on the host). Every kernel is a grid-stride loop
// over the output (any size, any launch width).
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "nn/cuda/element_ops.hpp"
#include "nn/op_math.hpp"

namespace upframe::nn::cuda {

// fp32 -> storage (load() is in element_ops.hpp).
template <typename T>
__device__ inline T store(float v);
template <>
__device__ inline float store<float>(float v) {
  return v;
}
template <>
__device__ inline __half store<__half>(float v) {
  return __float2half_rn(v);
}

constexpr int kThreads = 256;

// Blocks for a grid-stride loop over n items (capped: the loop covers the rest).
inline unsigned grid_for(size_t n) {
  size_t blocks = (n + kThreads - 1) / kThreads;
  return unsigned(blocks < 1 ? 1 : blocks > (size_t(1) << 20) ? (size_t(1) << 20) : blocks);
}

#define UPFRAME_GRID_STRIDE(i, n)                                         \
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += size_t(gridDim.x) * blockDim.x)

template <typename S, typename D>
__global__ void convert_kernel(const S* in, D* out, size_t n) {
  UPFRAME_GRID_STRIDE(i, n) { out[i] = store<D>(load(in[i])); }
}

// out = activation(in + bias[channel]); in == out allowed (in place after a convolution).
// `plane`: values per channel (1 for a vector, whose channel is the index).
template <typename T>
__global__ void bias_activation_kernel(const T* in, T* out, const float* bias,
                                       math::ActivationArgs act, size_t plane, size_t n) {
  UPFRAME_GRID_STRIDE(i, n) {
    int c = int(i / plane);
    float v = load(in[i]);
    if (bias) v += bias[c];
    out[i] = store<T>(math::activate(act, v, c));
  }
}

template <typename T>
__global__ void deconv_kernel(const T* in, const T* w, const float* bias, math::ActivationArgs act,
                              T* out, DeconvGeometry g) {
  const size_t n = size_t(g.out_c) * g.out_h * g.out_w;
  UPFRAME_GRID_STRIDE(idx, n) { out[idx] = store<T>(deconv_element(in, w, bias, act, g, idx)); }
}

template <typename T>
__global__ void pixelshuffle_kernel(const T* in, T* out, int out_c, int in_h, int in_w, int r,
                                    PixelShuffleMode mode) {
  const size_t n = size_t(out_c) * in_h * r * in_w * r;
  UPFRAME_GRID_STRIDE(idx, n) {
    out[idx] = in[pixelshuffle_source(idx, out_c, in_h, in_w, r, mode)];
  }
}

template <typename T>
__global__ void resample_kernel(const T* in, T* out, int channels, int in_h, int in_w, int out_h,
                                int out_w, ResampleTaps taps) {
  const size_t n = size_t(channels) * out_h * out_w;
  UPFRAME_GRID_STRIDE(idx, n) {
    out[idx] = store<T>(resample_element(in, in_h, in_w, out_h, out_w, taps, idx));
  }
}

template <typename T>
__global__ void binary_same_kernel(const T* a, const T* b, T* out, BinaryKind kind, size_t n) {
  UPFRAME_GRID_STRIDE(i, n) { out[i] = store<T>(math::binary(kind, load(a[i]), load(b[i]))); }
}

template <typename T>
__global__ void binary_scalar_kernel(const T* a, float scalar, T* out, BinaryKind kind, size_t n) {
  UPFRAME_GRID_STRIDE(i, n) { out[i] = store<T>(math::binary(kind, load(a[i]), scalar)); }
}

// One image and one value per channel (or a single value); `image_first`: the image is the
// left operand.
template <typename T>
__global__ void binary_broadcast_kernel(const T* image, const T* small, T* out, BinaryKind kind,
                                        size_t plane, size_t n, bool single, bool image_first) {
  UPFRAME_GRID_STRIDE(i, n) {
    const float k = load(small[single ? 0 : i / plane]);
    const float e = load(image[i]);
    out[i] = store<T>(image_first ? math::binary(kind, e, k) : math::binary(kind, k, e));
  }
}

template <typename T>
__global__ void eltwise_kernel(EltwiseInputs<T> ins, EltwiseKind kind, T* out, size_t n) {
  UPFRAME_GRID_STRIDE(i, n) { out[i] = store<T>(eltwise_element(ins, kind, i)); }
}

template <typename T>
__global__ void crop_kernel(const T* in, T* out, int in_h, int in_w, int coffset, int hoffset,
                            int woffset, int out_c, int out_h, int out_w) {
  const size_t n = size_t(out_c) * out_h * out_w;
  UPFRAME_GRID_STRIDE(idx, n) {
    out[idx] = in[crop_source(idx, in_h, in_w, coffset, hoffset, woffset, out_h, out_w)];
  }
}

// ncnn Padding (kConstant fills `value`); also the zero padding in front of a convolution
// whose pads cuDNN cannot express.
template <typename T>
__global__ void padding_kernel(const T* in, T* out, int channels, int in_h, int in_w, int top,
                               int left, PaddingType type, float value, int out_h, int out_w) {
  const size_t n = size_t(channels) * out_h * out_w;
  UPFRAME_GRID_STRIDE(idx, n) {
    const long long src = padding_source_index(idx, in_h, in_w, top, left, type, out_h, out_w);
    out[idx] = src < 0 ? store<T>(value) : in[src];
  }
}

// Global pooling: one block per channel, sums in double as the CPU.
template <typename T>
__global__ void global_pool_kernel(const T* in, T* out, size_t plane, bool average) {
  __shared__ double sums[kThreads];
  __shared__ float bests[kThreads];
  const T* p = in + size_t(blockIdx.x) * plane;
  double sum = 0;
  float best = -INFINITY;
  for (size_t i = threadIdx.x; i < plane; i += blockDim.x) {
    const float v = load(p[i]);
    sum += v;
    best = math::max_of(best, v);
  }
  sums[threadIdx.x] = sum;
  bests[threadIdx.x] = best;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s /= 2) {
    if (int(threadIdx.x) < s) {
      sums[threadIdx.x] += sums[threadIdx.x + s];
      bests[threadIdx.x] = math::max_of(bests[threadIdx.x], bests[threadIdx.x + s]);
    }
    __syncthreads();
  }
  if (threadIdx.x == 0)
    out[blockIdx.x] = store<T>(average ? float(sums[0] / double(plane)) : bests[0]);
}

// InnerProduct: one block per output, fp32 weights [outputs][inputs].
template <typename T>
__global__ void inner_product_kernel(const T* in, const float* w, const float* bias,
                                     math::ActivationArgs act, T* out, size_t inputs) {
  __shared__ float sums[kThreads];
  const int o = blockIdx.x;
  const float* row = w + size_t(o) * inputs;
  float acc = 0.f;
  for (size_t i = threadIdx.x; i < inputs; i += blockDim.x) acc += row[i] * load(in[i]);
  sums[threadIdx.x] = acc;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s /= 2) {
    if (int(threadIdx.x) < s) sums[threadIdx.x] += sums[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    const float v = (bias ? bias[o] : 0.f) + sums[0];
    out[o] = store<T>(math::activate(act, v, o));
  }
}

// GroupNorm statistics in two steps, so a group's values (its channels' planes, `count`
// contiguous values) are read by many blocks: block (chunk, group) sums its share and their
// squares in double into partial[2 * (group * chunks + chunk) + {0, 1}]; then one thread per
// group (group_norm_finish_kernel, ops.cu) gives stats[2g] the mean and stats[2g + 1]
// 1/sqrt(var + eps), var = E[x^2] - mean^2 in double (the CPU subtracts the mean first; the two
// agree to float rounding for image data).
constexpr int kGroupNormChunks = 64;
template <typename T>
__global__ void group_norm_partial_kernel(const T* in, double* partial, size_t count) {
  __shared__ double sums[kThreads], squares[kThreads];
  const unsigned chunk = blockIdx.x, group = blockIdx.y, t = threadIdx.x;
  const T* p = in + size_t(group) * count;
  double sum = 0, square = 0;
  for (size_t i = size_t(chunk) * blockDim.x + t; i < count; i += size_t(gridDim.x) * blockDim.x) {
    const double v = load(p[i]);
    sum += v;
    square += v * v;
  }
  sums[t] = sum;
  squares[t] = square;
  __syncthreads();
  for (unsigned s = blockDim.x / 2; s > 0; s /= 2) {
    if (t < s) {
      sums[t] += sums[t + s];
      squares[t] += squares[t + s];
    }
    __syncthreads();
  }
  if (t == 0) {
    partial[2 * (size_t(group) * gridDim.x + chunk)] = sums[0];
    partial[2 * (size_t(group) * gridDim.x + chunk) + 1] = squares[0];
  }
}

template <typename T>
__global__ void group_norm_apply_kernel(const T* in, T* out, const float* stats,
                                        math::NormWeights w, size_t plane, int per_group,
                                        size_t n) {
  UPFRAME_GRID_STRIDE(i, n) {
    const int c = int(i / plane), g = c / per_group;
    out[i] = store<T>(math::normalize(load(in[i]), stats[2 * g], stats[2 * g + 1], w, c));
  }
}

// LayerNorm over the channels of each pixel: one thread per pixel, fp32 sums as the CPU.
template <typename T>
__global__ void layer_norm_kernel(const T* in, T* out, math::NormWeights w, int channels,
                                  size_t plane, float eps) {
  UPFRAME_GRID_STRIDE(i, plane) {
    float sum = 0;
    for (int c = 0; c < channels; ++c) sum += load(in[c * plane + i]);
    const float mean = sum / float(channels);
    float squares = 0;
    for (int c = 0; c < channels; ++c) {
      const float d = load(in[c * plane + i]) - mean;
      squares += d * d;
    }
    const float inv_std = 1.f / sqrtf(squares / float(channels) + eps);
    for (int c = 0; c < channels; ++c)
      out[c * plane + i] = store<T>(math::normalize(load(in[c * plane + i]), mean, inv_std, w, c));
  }
}

// DySample: the CPU's arithmetic (op_math.hpp) per output element.
template <typename T>
__global__ void dysample_kernel(const T* in, const T* offsets, T* out, math::DySampleGeometry g,
                                size_t n) {
  const size_t plane = size_t(g.h) * g.w;
  UPFRAME_GRID_STRIDE(i, n) {
    const math::DySamplePoint q = math::dysample_point(g, i);
    const size_t at = size_t(q.y) * g.w + q.x;
    const math::BilinearTaps t = math::border_bilinear(
        float(q.x) + load(offsets[q.offset_x_channel * plane + at]),
        float(q.y) + load(offsets[q.offset_y_channel * plane + at]), g.w, g.h);
    const T* p = in + q.c * plane;
    out[i] = store<T>(math::bilinear_mix(
        t, load(p[size_t(t.y0) * g.w + t.x0]), load(p[size_t(t.y0) * g.w + t.x1]),
        load(p[size_t(t.y1) * g.w + t.x0]), load(p[size_t(t.y1) * g.w + t.x1])));
  }
}

#undef UPFRAME_GRID_STRIDE

}  // namespace upframe::nn::cuda
