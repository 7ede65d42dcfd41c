// The CPU's ops that move values: Input, Concat, Crop, Padding, PixelShuffle, Interp
// (separable resampling with the taps of op_math.hpp) and DySample (bilinear at learned offsets).
#include <algorithm>
#include <cstring>
#include <memory>

#include "nn/cpu/cpu_backend.hpp"
#include "nn/op_math.hpp"

namespace upframe::nn::cpu {

namespace {

using math::Taps;

// Separable resampling of a blocked image: rows first into `tmp`, then columns.
template <int B>
void resample(const Blocked& src, const Blocked& dst, const Taps& xt, const Taps& yt, float* tmp) {
  int cbs = src.channel_blocks();
  Blocked mid{tmp, B, src.channels, src.height, dst.width};
#pragma omp parallel for collapse(2) schedule(static)
  for (int cb = 0; cb < cbs; ++cb)
    for (int y = 0; y < src.height; ++y)
      for (int x = 0; x < dst.width; ++x) {
        float acc[B] = {};
        for (int t = 0; t < xt.count; ++t) {
          const float* p = src.pixel(cb, y, xt.index[x * xt.count + t]);
          float w = xt.weight[x * xt.count + t];
#pragma omp simd
          for (int i = 0; i < B; ++i) acc[i] += p[i] * w;
        }
        std::memcpy(mid.pixel(cb, y, x), acc, sizeof(acc));
      }
#pragma omp parallel for collapse(2) schedule(static)
  for (int cb = 0; cb < cbs; ++cb)
    for (int y = 0; y < dst.height; ++y)
      for (int x = 0; x < dst.width; ++x) {
        float acc[B] = {};
        for (int t = 0; t < yt.count; ++t) {
          const float* p = mid.pixel(cb, yt.index[y * yt.count + t], x);
          float w = yt.weight[y * yt.count + t];
#pragma omp simd
          for (int i = 0; i < B; ++i) acc[i] += p[i] * w;
        }
        std::memcpy(dst.pixel(cb, y, x), acc, sizeof(acc));
      }
}

void resample_any(const Blocked& src, const Blocked& dst, const Taps& xt, const Taps& yt,
                  float* tmp) {
  if (xt.count == 1 && yt.count == 1) {  // nearest: one copy per pixel, no temporary
    const int B = src.block;
#pragma omp parallel for collapse(2) schedule(static)
    for (int cb = 0; cb < src.channel_blocks(); ++cb)
      for (int y = 0; y < dst.height; ++y) {
        const float* row = src.pixel(cb, yt.index[y], 0);
        float* out = dst.pixel(cb, y, 0);
        for (int x = 0; x < dst.width; ++x)
          std::memcpy(out + size_t(x) * B, row + size_t(xt.index[x]) * B, sizeof(float) * B);
      }
    return;
  }
  if (src.block == 16)
    resample<16>(src, dst, xt, yt, tmp);
  else if (src.block == 8)
    resample<8>(src, dst, xt, yt, tmp);
  else
    resample<1>(src, dst, xt, yt, tmp);
}

}  // namespace

void prepare_input(CpuBackend& cpu, CpuPlan& plan, int op_index) {
  const Op& op = cpu.graph.ops[op_index];
  cpu.new_blob(plan, op.outputs[0], plan.shapes[op.outputs[0]], 1);
}

void prepare_concat(CpuBackend& cpu, CpuPlan& plan, int op_index) {
  const Op& op = cpu.graph.ops[op_index];
  const std::vector<Shape>& shapes = plan.shapes;
  const Shape& out_shape = shapes[op.outputs[0]];
  // All inputs nhwc (RealPLKSR's partial convolution): nhwc out, each pixel's parts copied in
  // turn, instead of reordering every input to nchw.
  bool all_nhwc = true;
  for (int b : op.inputs)
    all_nhwc =
        all_nhwc && plan.blobs[b].shape.c > 1 && plan.blobs[b].block == plan.blobs[b].shape.c;
  if (all_nhwc) {
    std::vector<Blob> ins;
    for (int b : op.inputs) ins.push_back(plan.blobs[b]);
    Blob out = cpu.new_blob(plan, op.outputs[0], out_shape, out_shape.c);
    plan.steps.push_back([ins, out]() {
      const Blocked d = view(out);
#pragma omp parallel for
      for (int y = 0; y < d.height; ++y)
        for (int x = 0; x < d.width; ++x) {
          float* to = d.pixel(0, y, x);
          for (const Blob& in : ins) {
            std::memcpy(to, view(in).pixel(0, y, x), sizeof(float) * in.shape.c);
            to += in.shape.c;
          }
        }
    });
    return;
  }
  int block = plan.blobs[op.inputs[0]].block;
  // Channel blocks are outermost: concatenation is one copy per input (not for nhwc,
  // whose one block is the whole pixel).
  for (int b : op.inputs)
    if (plan.blobs[b].block != block || plan.blobs[b].shape.c % block != 0 ||
        !layout_fits(block, out_shape.c))
      block = 1;
  std::vector<Blob> ins;
  for (int b : op.inputs) ins.push_back(cpu.in_layout(plan, b, block));
  Blob out = cpu.new_blob(plan, op.outputs[0], out_shape, block);
  plan.steps.push_back([ins, out]() {
    char* d = static_cast<char*>(out.mem.get_data_handle());
    for (const Blob& in : ins) {
      size_t n = in.mem.get_desc().get_size();
      std::memcpy(d, in.mem.get_data_handle(), n);
      d += n;
    }
  });
}

void prepare_crop(CpuBackend& cpu, CpuPlan& plan, int op_index) {
  const Op& op = cpu.graph.ops[op_index];
  const std::vector<Shape>& shapes = plan.shapes;
  const Shape& out_shape = shapes[op.outputs[0]];
  const Shape& in_shape = shapes[op.inputs[0]];
  CropRegion r = resolve_crop(op.get<CropParams>(), in_shape,
                              op.inputs.size() > 1 ? &shapes[op.inputs[1]] : nullptr);
  if (in_shape.dims != 3) {
    Blob in = plan.blobs[op.inputs[0]];
    Blob out = cpu.new_blob(plan, op.outputs[0], out_shape, 0);
    plan.steps.push_back([in, out, r]() {
      std::memcpy(out.data(), in.data() + r.woffset, r.out.w * sizeof(float));
    });
    return;
  }
  int block = plan.blobs[op.inputs[0]].block;
  if (block == in_shape.c && in_shape.c > 1 && out_shape.c > 1) {
    // nhwc in, nhwc out: each pixel's channels [coffset, coffset + c) copied.
    Blob in = plan.blobs[op.inputs[0]];
    Blob out = cpu.new_blob(plan, op.outputs[0], out_shape, out_shape.c);
    plan.steps.push_back([in, out, r]() {
      const Blocked s = view(in), d = view(out);
#pragma omp parallel for
      for (int y = 0; y < d.height; ++y)
        for (int x = 0; x < d.width; ++x)
          std::memcpy(d.pixel(0, y, x), s.pixel(0, y + r.hoffset, x + r.woffset) + r.coffset,
                      sizeof(float) * d.channels);
    });
    return;
  }
  if (r.coffset % block != 0 || !layout_fits(block, out_shape.c)) block = 1;
  Blob in = cpu.in_layout(plan, op.inputs[0], block);
  Blob out = cpu.new_blob(plan, op.outputs[0], out_shape, block);
  plan.steps.push_back([in, out, r]() {
    Blocked s = view(in), d = view(out);
    int cb0 = r.coffset / s.block;
#pragma omp parallel for collapse(2)
    for (int cb = 0; cb < d.channel_blocks(); ++cb)
      for (int y = 0; y < d.height; ++y)
        std::memcpy(d.pixel(cb, y, 0), s.pixel(cb0 + cb, y + r.hoffset, r.woffset),
                    sizeof(float) * d.width * d.block);
    zero_channel_padding(d);
  });
}

void prepare_padding(CpuBackend& cpu, CpuPlan& plan, int op_index) {
  const Op& op = cpu.graph.ops[op_index];
  const std::vector<Shape>& shapes = plan.shapes;
  const Shape& out_shape = shapes[op.outputs[0]];
  Blob in = plan.blobs[op.inputs[0]];
  Blob out = cpu.new_blob(plan, op.outputs[0], out_shape, in.block);
  PaddingParams p = op.get<PaddingParams>();
  plan.steps.push_back([in, out, p]() {
    Blocked s = view(in), d = view(out);
    auto source = [&](int i, int n) { return math::padding_source(i, n, p.type); };
#pragma omp parallel for collapse(2)
    for (int cb = 0; cb < d.channel_blocks(); ++cb)
      for (int y = 0; y < d.height; ++y) {
        int sy = source(y - p.top, s.height);
        for (int x = 0; x < d.width; ++x) {
          int sx = source(x - p.left, s.width);
          float* o = d.pixel(cb, y, x);
          if (sy < 0 || sx < 0)
            std::fill(o, o + d.block, p.value);
          else
            std::memcpy(o, s.pixel(cb, sy, sx), sizeof(float) * d.block);
        }
      }
    zero_channel_padding(d);
  });
}

void prepare_pixelshuffle(CpuBackend& cpu, CpuPlan& plan, int op_index) {
  const Op& op = cpu.graph.ops[op_index];
  const std::vector<Shape>& shapes = plan.shapes;
  const Shape& out_shape = shapes[op.outputs[0]];
  const int r = op.get<PixelShuffleParams>().factor;
  const PixelShuffleMode mode = op.get<PixelShuffleParams>().mode;
  Blob nhwc = plan.blobs[op.inputs[0]];
  if (nhwc.block == nhwc.shape.c && nhwc.block > 1) {
    // Straight from nhwc (a convolution's output): each input pixel's channels are
    // scattered to r x r output pixels of every output channel.
    Blob out = cpu.new_blob(plan, op.outputs[0], out_shape, 1);
    plan.steps.push_back([nhwc, out, r, mode]() {
      Blocked s = view(nhwc), d = view(out);
      std::vector<int> source(size_t(d.channels) * r * r);
      for (int p = 0; p < d.channels; ++p)
        for (int i = 0; i < r; ++i)
          for (int j = 0; j < r; ++j)
            source[(size_t(p) * r + i) * r + j] =
                math::pixelshuffle_source_channel(p, i, j, r, d.channels, mode);
#pragma omp parallel for schedule(static)
      for (int y = 0; y < s.height; ++y)
        for (int p = 0; p < d.channels; ++p)
          for (int i = 0; i < r; ++i) {
            float* dst = d.pixel(p, y * r + i, 0);
            const int* q = &source[(size_t(p) * r + i) * r];
            for (int x = 0; x < s.width; ++x) {
              const float* px = s.pixel(0, y, x);
              for (int j = 0; j < r; ++j) dst[x * r + j] = px[q[j]];
            }
          }
    });
    return;
  }
  Blob in = cpu.in_layout(plan, op.inputs[0], 1);
  Blob out = cpu.new_blob(plan, op.outputs[0], out_shape, 1);
  plan.steps.push_back([in, out, r, mode]() {
    Blocked s = view(in), d = view(out);
#pragma omp parallel for collapse(2)
    for (int p = 0; p < d.channels; ++p)
      for (int y = 0; y < s.height; ++y)
        for (int i = 0; i < r; ++i)
          for (int j = 0; j < r; ++j) {
            int q = math::pixelshuffle_source_channel(p, i, j, r, d.channels, mode);
            const float* src = s.pixel(q, y, 0);
            float* dst = d.pixel(p, y * r + i, j);
            for (int x = 0; x < s.width; ++x) dst[x * r] = src[x];
          }
  });
}

void prepare_interp(CpuBackend& cpu, CpuPlan& plan, int op_index) {
  const Op& op = cpu.graph.ops[op_index];
  const std::vector<Shape>& shapes = plan.shapes;
  const Shape& out_shape = shapes[op.outputs[0]];
  Blob in = plan.blobs[op.inputs[0]];
  const InterpParams& p = op.get<InterpParams>();
  bool sized = p.output_height != 0 && p.output_width != 0;
  auto xt = std::make_shared<math::Taps>(
      math::make_taps(p.resize_type, in.shape.w, out_shape.w, p.width_scale, sized));
  auto yt = std::make_shared<math::Taps>(
      math::make_taps(p.resize_type, in.shape.h, out_shape.h, p.height_scale, sized));
  // The filtering loops are written for blocks of 1, 8 and 16 (nearest copies any).
  if (in.block != 1 && in.block != 8 && in.block != 16 && (xt->count > 1 || yt->count > 1))
    in = cpu.in_layout(plan, op.inputs[0], 1);
  Blob out = cpu.new_blob(plan, op.outputs[0], out_shape, in.block);
  int cbs = (in.shape.c + in.block - 1) / in.block;
  auto tmp =
      std::make_shared<std::vector<float>>(size_t(cbs) * in.block * in.shape.h * out_shape.w);
  plan.steps.push_back(
      [in, out, xt, yt, tmp]() { resample_any(view(in), view(out), *xt, *yt, tmp->data()); });
}

void prepare_dysample(CpuBackend& cpu, CpuPlan& plan, int op_index) {
  const Op& op = cpu.graph.ops[op_index];
  // Plain NCHW: the sampled pixels are anywhere in a channel's plane.
  Blob in = cpu.in_layout(plan, op.inputs[0], 1);
  Blob offsets = cpu.in_layout(plan, op.inputs[1], 1);
  Blob out = cpu.new_blob(plan, op.outputs[0], plan.shapes[op.outputs[0]], 1);
  const DySampleParams p = op.get<DySampleParams>();
  const math::DySampleGeometry g{in.shape.c, in.shape.h, in.shape.w, p.scale, p.groups};
  plan.steps.push_back([in, offsets, out, g]() {
    const float *src = in.data(), *off = offsets.data();
    float* dst = out.data();
    const size_t plane = size_t(g.h) * g.w, n = out.shape.elements();
#pragma omp parallel for
    for (size_t i = 0; i < n; ++i) {
      const math::DySamplePoint q = math::dysample_point(g, i);
      const size_t at = size_t(q.y) * g.w + q.x;
      const math::BilinearTaps t =
          math::border_bilinear(float(q.x) + off[q.offset_x_channel * plane + at],
                                float(q.y) + off[q.offset_y_channel * plane + at], g.w, g.h);
      const float* p = src + q.c * plane;
      dst[i] = math::bilinear_mix(t, p[size_t(t.y0) * g.w + t.x0], p[size_t(t.y0) * g.w + t.x1],
                                  p[size_t(t.y1) * g.w + t.x0], p[size_t(t.y1) * g.w + t.x1]);
    }
  });
}

}  // namespace upframe::nn::cpu
