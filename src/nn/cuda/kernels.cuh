// CUDA kernels of the neural-network ops other than the cuDNN convolutions. Blobs are plain
// NCHW (a vector is 1x1xW) in storage type T (float or __half); arithmetic is fp32 and the
// per-element formulas come from nn/op_math.hpp, the ones the CPU backend uses. Every kernel is
// a grid-stride loop (any size, any launch width); launchers queue on `stream` and check the
// launch.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "nn/op_math.hpp"

namespace upframe::nn::cuda {

// Storage <-> fp32.
__device__ inline float load(float v) { return v; }
__device__ inline float load(__half v) { return __half2float(v); }
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

// ncnn Deconvolution as a gather: out[o][oy][ox] = bias[o] + sum over the group's inputs i and
// taps (ky, kx) with oy = iy*stride + ky*dilation - pad_top (same for x) of
// in[i][iy][ix] * w[g][o'][i'][ky][kx] (ncnn's order, unflipped), then the activation.
struct DeconvGeometry {
  int in_c, in_h, in_w, out_c, out_h, out_w;
  int kernel_h, kernel_w, stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left;
  int groups;
};

template <typename T>
__global__ void deconv_kernel(const T* in, const T* w, const float* bias, math::ActivationArgs act,
                              T* out, DeconvGeometry g) {
  const size_t n = size_t(g.out_c) * g.out_h * g.out_w;
  const int in_per_group = g.in_c / g.groups, out_per_group = g.out_c / g.groups;
  UPFRAME_GRID_STRIDE(idx, n) {
    const int ox = int(idx % g.out_w);
    const int oy = int((idx / g.out_w) % g.out_h);
    const int o = int(idx / (size_t(g.out_w) * g.out_h));
    const int group = o / out_per_group, o_local = o % out_per_group;
    float acc = bias ? bias[o] : 0.f;
    for (int ky = 0; ky < g.kernel_h; ++ky) {
      const int ty = oy + g.pad_top - ky * g.dilation_h;
      if (ty < 0 || ty % g.stride_h != 0) continue;
      const int iy = ty / g.stride_h;
      if (iy >= g.in_h) continue;
      for (int kx = 0; kx < g.kernel_w; ++kx) {
        const int tx = ox + g.pad_left - kx * g.dilation_w;
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
    out[idx] = store<T>(math::activate(act, acc, o));
  }
}

template <typename T>
__global__ void pixelshuffle_kernel(const T* in, T* out, int out_c, int in_h, int in_w, int r,
                                    int mode) {
  const int out_h = in_h * r, out_w = in_w * r;
  const size_t n = size_t(out_c) * out_h * out_w;
  UPFRAME_GRID_STRIDE(idx, n) {
    const int x = int(idx % out_w);
    const int y = int((idx / out_w) % out_h);
    const int p = int(idx / (size_t(out_w) * out_h));
    const int q = math::pixelshuffle_source_channel(p, y % r, x % r, r, out_c, mode);
    out[idx] = in[(size_t(q) * in_h + y / r) * in_w + x / r];
  }
}

// Separable resampling with the host-made taps (math::make_taps), summed as the CPU does: each
// source row's horizontal sum in tap order, then those rows in tap order.
template <typename T>
__global__ void resample_kernel(const T* in, T* out, int channels, int in_h, int in_w, int out_h,
                                int out_w, const int* x_index, const float* x_weight, int x_count,
                                const int* y_index, const float* y_weight, int y_count) {
  const size_t n = size_t(channels) * out_h * out_w;
  UPFRAME_GRID_STRIDE(idx, n) {
    const int x = int(idx % out_w);
    const int y = int((idx / out_w) % out_h);
    const int c = int(idx / (size_t(out_w) * out_h));
    const T* plane = in + size_t(c) * in_h * in_w;
    float acc = 0.f;
    for (int ty = 0; ty < y_count; ++ty) {
      const T* row = plane + size_t(y_index[y * y_count + ty]) * in_w;
      float mid = 0.f;
      for (int tx = 0; tx < x_count; ++tx)
        mid += load(row[x_index[x * x_count + tx]]) * x_weight[x * x_count + tx];
      acc += mid * y_weight[y * y_count + ty];
    }
    out[idx] = store<T>(acc);
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

constexpr int kMaxEltwiseInputs = 16;
template <typename T>
struct EltwiseInputs {
  const T* data[kMaxEltwiseInputs];
  float coefficient[kMaxEltwiseInputs];
  int count;
};

// ncnn Eltwise: 0 product, 1 sum (with coefficients), 2 max, in input order as the CPU.
template <typename T>
__global__ void eltwise_kernel(EltwiseInputs<T> ins, int kind, T* out, size_t n) {
  UPFRAME_GRID_STRIDE(i, n) {
    float v = kind == 1 ? load(ins.data[0][i]) * ins.coefficient[0] : load(ins.data[0][i]);
    for (int k = 1; k < ins.count; ++k) {
      const float x = load(ins.data[k][i]);
      v = kind == 0 ? v * x : kind == 1 ? v + x * ins.coefficient[k] : math::max_of(v, x);
    }
    out[i] = store<T>(v);
  }
}

template <typename T>
__global__ void crop_kernel(const T* in, T* out, int in_h, int in_w, int coffset, int hoffset,
                            int woffset, int out_c, int out_h, int out_w) {
  const size_t n = size_t(out_c) * out_h * out_w;
  UPFRAME_GRID_STRIDE(idx, n) {
    const int x = int(idx % out_w);
    const int y = int((idx / out_w) % out_h);
    const int c = int(idx / (size_t(out_w) * out_h));
    out[idx] = in[(size_t(c + coffset) * in_h + y + hoffset) * in_w + x + woffset];
  }
}

// ncnn Padding (0 constant `value`, 1 replicate, 2 reflect); also the zero padding in front of
// a convolution whose pads cuDNN cannot express.
template <typename T>
__global__ void padding_kernel(const T* in, T* out, int channels, int in_h, int in_w, int top,
                               int left, int type, float value, int out_h, int out_w) {
  const size_t n = size_t(channels) * out_h * out_w;
  UPFRAME_GRID_STRIDE(idx, n) {
    const int x = int(idx % out_w);
    const int y = int((idx / out_w) % out_h);
    const int c = int(idx / (size_t(out_w) * out_h));
    const int sy = math::padding_source(y - top, in_h, type);
    const int sx = math::padding_source(x - left, in_w, type);
    out[idx] = sy < 0 || sx < 0 ? store<T>(value) : in[(size_t(c) * in_h + sy) * in_w + sx];
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

#undef UPFRAME_GRID_STRIDE

}  // namespace upframe::nn::cuda
