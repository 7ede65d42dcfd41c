// Convolution and Deconvolution on the CPU: oneDNN primitives with fused eltwise post-ops.
//
// A stride-1 convolution between nhwc blobs runs in bands of output rows (a band's rows are
// contiguous in nhwc, so a band is a dense tensor at an offset): PReLU is applied to each band
// while it is still in cache, since oneDNN 2.6's prelu post-op drops to the reference
// implementation and a post-op chain cannot express max(x,0) + a*min(x,0) per channel. In
// bf16, a band is computed in fp32 into a small buffer and written to the blob as bf16 by the
// same pass, when only convolutions read that blob.
#include <omp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <tuple>
#include <unordered_map>

#include "nn/cpu/cpu_backend.hpp"

namespace upframe::nn::cpu {

namespace {

// fp32 -> bf16, rounding to nearest even (what oneDNN's reorders do for finite values).
inline uint16_t to_bf16(float v) {
  uint32_t u;
  std::memcpy(&u, &v, sizeof(u));
  u += 0x7FFFu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

// PReLU of one value, without a branch: max(v,0) + slope*min(v,0) is v for v > 0 and v*slope
// otherwise, exactly, and compiles to vector selects. (The `v > 0 ? v : v*slope` form became a
// branch per value here: 20 ms instead of 0.6 ms for a 64x270x480 blob of mixed signs.)
inline float prelu_value(float v, float slope) {
  return (v > 0.f ? v : 0.f) + slope * (v < 0.f ? v : 0.f);
}

// Per-channel slope in place on a blocked image (one pass, vectorised over the block).
template <int B>
void prelu_blocked(const Blocked& v, const std::vector<float>& slopes_padded) {
  int cbs = v.channel_blocks();
  size_t pixels = size_t(v.height) * v.width;
#pragma omp parallel for collapse(2) schedule(static)
  for (int cb = 0; cb < cbs; ++cb)
    for (int y = 0; y < v.height; ++y) {
      float* p = v.base + (size_t(cb) * pixels + size_t(y) * v.width) * B;
      const float* s = slopes_padded.data() + cb * B;
      for (int x = 0; x < v.width; ++x, p += B)
#pragma omp simd
        for (int i = 0; i < B; ++i) p[i] = prelu_value(p[i], s[i]);
    }
}

// The slopes of a PReLU for every channel (one shared slope repeated), padded with zeros to
// whole channel blocks.
std::vector<float> padded_slopes(const std::vector<float>& slopes, int channels, int block) {
  std::vector<float> s(size_t((channels + block - 1) / block) * block, 0.f);
  for (int c = 0; c < channels; ++c) s[c] = slopes.size() == 1 ? slopes[0] : slopes[c];
  return s;
}

// PReLU over `pixels` nhwc pixels of `channels` values (serial: called per band, in parallel).
void prelu_nhwc(float* p, size_t pixels, int channels, const float* slopes) {
  for (size_t i = 0; i < pixels; ++i, p += channels)
#pragma omp simd
    for (int c = 0; c < channels; ++c) p[c] = prelu_value(p[c], slopes[c]);
}

// The same, reading fp32 and writing bf16 (`slopes` null: conversion only).
void prelu_nhwc_to_bf16(const float* p, uint16_t* out, size_t pixels, int channels,
                        const float* slopes) {
  for (size_t i = 0; i < pixels; ++i, p += channels, out += channels) {
    if (slopes) {
#pragma omp simd
      for (int c = 0; c < channels; ++c) out[c] = to_bf16(prelu_value(p[c], slopes[c]));
    } else {
#pragma omp simd
      for (int c = 0; c < channels; ++c) out[c] = to_bf16(p[c]);
    }
  }
}

void prelu_in_place(const Blob& b, const std::vector<float>& slopes) {
  Blocked v = view(b);
  std::vector<float> s = padded_slopes(slopes, v.channels, v.block);
  if (v.block == 16) {
    prelu_blocked<16>(v, s);
  } else if (v.block == 8) {
    prelu_blocked<8>(v, s);
  } else if (v.block == 1) {
    prelu_blocked<1>(v, s);
  } else {  // nhwc
#pragma omp parallel for schedule(static)
    for (int y = 0; y < v.height; ++y)
      prelu_nhwc(v.pixel(0, y, 0), size_t(v.width), v.channels, s.data());
  }
}

int block_of(const memory::desc& d, const Shape& s) {
  for (int b : {s.c, 1, 8, 16})
    if (d == image_desc(s, b)) return b;
  return -1;
}

// Grows each thread's buffer (shared by every banded convolution: steps run one at a time)
// to at least `bytes`.
void reserve_thread_buffers(CpuBackend& cpu, size_t bytes) {
  cpu.thread_buffers.resize(cpu.streams.size());
  for (auto& buffer : cpu.thread_buffers)
    if (!buffer || cpu.thread_buffer_bytes < bytes) buffer = std::make_unique<AlignedBuffer>(bytes);
  cpu.thread_buffer_bytes = std::max(cpu.thread_buffer_bytes, bytes);
}

// Output rows per band: about cpu.band_bytes of fp32 output.
int band_rows(const CpuBackend& cpu, const Shape& out) {
  const size_t row = size_t(out.w) * out.c * sizeof(float);
  return int(std::clamp<size_t>(cpu.band_bytes / row, 1, size_t(out.h)));
}

// Weights in the primitive's layout, reordered once per layer (again only if a new input
// shape makes oneDNN choose another layout).
memory prepared_weights(CpuBackend& cpu, int op_index, const memory::desc& want, const dims& wdims,
                        tag wtag) {
  auto it = cpu.weights.find(op_index);
  if (it != cpu.weights.end() && it->second.get_desc() == want) return it->second;
  const ConvParams& c = cpu.graph.ops[op_index].get<ConvParams>();
  memory user({wdims, dt::f32, wtag}, cpu.engine, const_cast<float*>(c.weights.data()));
  memory prepared(want, cpu.engine);
  dnnl::reorder(user, prepared).execute(cpu.stream, user, prepared);
  cpu.stream.wait();
  cpu.weights[op_index] = prepared;
  return prepared;
}

// One band of output rows of a banded convolution: its primitive and weights (shared by
// the bands of the same geometry), its rows and the input rows it reads.
struct ConvBand {
  dnnl::primitive prim;
  memory weights;
  memory::desc src_md, dst_md, scratchpad_md;
  int out_y0, out_rows, in_y0;
};

// A stride-1 convolution between nhwc tensors, run as bands of output rows handed out to the
// threads one at a time (schedule dynamic: a thread the machine slows down takes fewer). Each
// band runs single-threaded in the thread that then applies its PReLU (and, for a bf16 blob,
// the conversion), while the band is in that core's cache; one parallel region per layer.
void build_banded_conv(CpuBackend& cpu, CpuPlan& plan, int op_index, const Shape& in,
                       const Shape& out, dt compute, memory src, memory bias,
                       dnnl::primitive_attr attr, const dims& wdims, tag wtag, const dims& strides,
                       const dims& dilates, const ConvPads& pads) {
  const Op& op = cpu.graph.ops[op_index];
  const ConvParams& c = op.get<ConvParams>();
  const bool bf16_out = compute == dt::bf16 && cpu.conv_only_readers[op.outputs[0]];
  const int rows = band_rows(cpu, out);
  // Each thread passes its own scratchpad: the bands run concurrently.
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  struct Geometry {
    dnnl::primitive prim;
    memory weights;
    memory::desc scratchpad_md;
  };
  // By band geometry (output rows, top pad, bottom pad): at most a few per layer.
  std::map<std::tuple<int, int, int>, Geometry> geometries;
  size_t scratchpad_bytes = 0;
  auto bands = std::make_shared<std::vector<ConvBand>>();
  for (int y0 = 0; y0 < out.h; y0 += rows) {
    const int out_rows = std::min(rows, out.h - y0);
    // Output row y reads input rows y - top .. y - top + kh - 1 (stride and dilation 1).
    const int first = y0 - pads.top, last = y0 + out_rows - 1 - pads.top + c.kernel_h - 1;
    const int in_y0 = std::max(0, first), in_y1 = std::min(in.h - 1, last);
    const int pad_top = in_y0 - first, pad_bottom = last - in_y1;
    memory::desc src_md({1, in.c, in_y1 - in_y0 + 1, in.w}, compute, tag::nhwc);
    memory::desc dst_md({1, out.c, out_rows, out.w}, dt::f32, tag::nhwc);
    Geometry& g = geometries[std::make_tuple(out_rows, pad_top, pad_bottom)];
    if (!g.prim) {
      memory::desc w_md(wdims, compute, tag::any);
      memory::desc b_md =
          c.bias_term ? memory::desc({c.num_output}, dt::f32, tag::x) : memory::desc();
      dnnl::convolution_forward::desc d(
          dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src_md, w_md,
          b_md, dst_md, strides, dilates, dims{pad_top, pads.left}, dims{pad_bottom, pads.right});
      dnnl::convolution_forward::primitive_desc pd(d, attr, cpu.engine);
      scratchpad_bytes = std::max(scratchpad_bytes, pd.scratchpad_desc().get_size());
      spdlog::debug("nn {}: bands of {} rows (pads {}, {}): {}", op.name, out_rows, pad_top,
                    pad_bottom, pd.impl_info_str());
      g = {dnnl::convolution_forward(pd),
           prepared_weights(cpu, op_index, pd.weights_desc(), wdims, wtag), pd.scratchpad_desc()};
    }
    bands->push_back({g.prim, g.weights, src_md, dst_md, g.scratchpad_md, y0, out_rows, in_y0});
  }
  Blob& dst_blob = cpu.new_blob(plan, op.outputs[0], out, out.c, bf16_out ? dt::bf16 : dt::f32);
  memory dst = dst_blob.mem;
  // Per thread: for bf16 blobs the band in fp32 before its conversion, then the scratchpad.
  const size_t band_f32_bytes = bf16_out ? size_t(rows) * out.w * out.c * sizeof(float) : 0;
  const size_t scratchpad_offset = (band_f32_bytes + 63) / 64 * 64;
  reserve_thread_buffers(cpu, scratchpad_offset + scratchpad_bytes);
  std::vector<float> slopes;
  if (c.activation.type == Activation::kPReLU)
    slopes = padded_slopes(c.activation.prelu_slopes, out.c, out.c);
  const size_t src_row_bytes = size_t(in.w) * in.c * memory::data_type_size(compute);
  const int channels = out.c, width = out.w;
  plan.steps.push_back([&cpu, bands, src, bias, dst, slopes, src_row_bytes, scratchpad_offset,
                        channels, width, bf16_out]() {
    auto* src_base = static_cast<char*>(src.get_data_handle());
    auto* dst_base = static_cast<char*>(dst.get_data_handle());
    const float* s = slopes.empty() ? nullptr : slopes.data();
    const int count = int(bands->size());
    const int threads = std::min<int>(int(cpu.streams.size()), omp_get_max_threads());
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num();
      dnnl::stream& stream = cpu.streams[t];
      char* own = static_cast<char*>(cpu.thread_buffers[t]->ptr);
#pragma omp for schedule(dynamic, 1)
      for (int i = 0; i < count; ++i) {
        const ConvBand& b = (*bands)[i];
        const size_t first_value = size_t(b.out_y0) * width * channels;
        auto* band =
            reinterpret_cast<float*>(bf16_out ? own : dst_base) + (bf16_out ? 0 : first_value);
        memory band_src(b.src_md, cpu.engine, src_base + size_t(b.in_y0) * src_row_bytes);
        memory band_dst(b.dst_md, cpu.engine, band);
        memory scratchpad(b.scratchpad_md, cpu.engine, own + scratchpad_offset);
        std::unordered_map<int, memory> args{{DNNL_ARG_SRC, band_src},
                                             {DNNL_ARG_WEIGHTS, b.weights},
                                             {DNNL_ARG_DST, band_dst},
                                             {DNNL_ARG_SCRATCHPAD, scratchpad}};
        if (bias) args[DNNL_ARG_BIAS] = bias;
        // Inside a parallel region oneDNN runs the primitive on this thread alone.
        b.prim.execute(stream, args);
        stream.wait();
        const size_t pixels = size_t(b.out_rows) * width;
        if (bf16_out)
          prelu_nhwc_to_bf16(band, reinterpret_cast<uint16_t*>(dst_base) + first_value, pixels,
                             channels, s);
        else if (s)
          prelu_nhwc(band, pixels, channels, s);
      }
    }
  });
}

}  // namespace

void prepare_convolution(CpuBackend& cpu, CpuPlan& plan, int op_index) {
  const std::vector<Shape>& shapes = plan.shapes;
  const Op& op = cpu.graph.ops[op_index];
  const ConvParams& c = op.get<ConvParams>();
  const bool deconv = op.type == OpType::kDeconvolution;
  const Shape& in = shapes[op.inputs[0]];
  const Shape& out = shapes[op.outputs[0]];
  dt compute = cpu.precision == Precision::kBf16 ? dt::bf16 : dt::f32;
  int g = c.groups;
  dims wdims = g == 1 ? dims{c.num_output, in.c, c.kernel_h, c.kernel_w}
                      : dims{g, c.num_output / g, in.c / g, c.kernel_h, c.kernel_w};
  tag wtag = g == 1 ? tag::oihw : tag::goihw;
  ConvPads pads = deconv ? ConvPads{c.pad_left, c.pad_right, c.pad_top, c.pad_bottom}
                         : resolve_conv_pads(c, in.h, in.w);
  dims strides{c.stride_h, c.stride_w}, dilates{c.dilation_h - 1, c.dilation_w - 1};
  dims pad_l{pads.top, pads.left}, pad_r{pads.bottom, pads.right};
  if (deconv) pad_r = {pads.bottom - c.output_pad_bottom, pads.right - c.output_pad_right};

  dnnl::primitive_attr attr;
  dnnl::post_ops po;
  const ActivationSpec& a = c.activation;
  switch (a.type) {
    case Activation::kReLU:
      po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
      break;
    case Activation::kLeakyReLU:
      po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, a.alpha, 0.f);
      break;
    case Activation::kClip:
      po.append_eltwise(1.f, dnnl::algorithm::eltwise_clip, a.alpha, a.beta);
      break;
    case Activation::kSigmoid:
      po.append_eltwise(1.f, dnnl::algorithm::eltwise_logistic, 0.f, 0.f);
      break;
    case Activation::kMish:
      po.append_eltwise(1.f, dnnl::algorithm::eltwise_mish, 0.f, 0.f);
      break;
    default:
      break;
  }
  attr.set_post_ops(po);

  auto make_pd = [&](tag dst_tag) -> std::pair<dnnl::primitive_desc, dnnl::primitive> {
    memory::desc src_md({1, in.c, in.h, in.w}, compute, tag::any);
    memory::desc w_md(wdims, compute, tag::any);
    // An empty descriptor means no bias term.
    memory::desc b_md =
        c.bias_term ? memory::desc({c.num_output}, dt::f32, tag::x) : memory::desc();
    memory::desc dst_md({1, out.c, out.h, out.w}, dt::f32, dst_tag);
    if (deconv) {
      dnnl::deconvolution_forward::desc d(dnnl::prop_kind::forward_inference,
                                          dnnl::algorithm::deconvolution_direct, src_md, w_md, b_md,
                                          dst_md, strides, dilates, pad_l, pad_r);
      dnnl::deconvolution_forward::primitive_desc pd(d, attr, cpu.engine);
      return {pd, dnnl::deconvolution_forward(pd)};
    }
    dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference,
                                      dnnl::algorithm::convolution_direct, src_md, w_md, b_md,
                                      dst_md, strides, dilates, pad_l, pad_r);
    dnnl::convolution_forward::primitive_desc pd(d, attr, cpu.engine);
    return {pd, dnnl::convolution_forward(pd)};
  };
  auto [pd, prim] = make_pd(tag::any);
  int block = block_of(pd.dst_desc(0), out);
  if (block < 0) {  // a layout our loops do not read: ask for plain nchw
    std::tie(pd, prim) = make_pd(tag::nchw);
    block = 1;
  }
  std::string impl = pd.impl_info_str();
  spdlog::debug("nn {} {} {}x{}x{} -> {}x{}x{}: {} (dst block {})", op_type_name(op.type), op.name,
                in.c, in.h, in.w, out.c, out.h, out.w, impl, block);
  if (impl.find("ref") != std::string::npos && !cpu.warned_ref)
    spdlog::warn("oneDNN uses its slow reference implementation for layer {} ({})", op.name, impl),
        cpu.warned_ref = true;

  // Source in the layout (and data type) the primitive wants.
  memory src = plan.blobs[op.inputs[0]].mem;
  if (src.get_desc() != pd.src_desc(0)) {
    memory converted = cpu.scratch(pd.src_desc(0));
    cpu.add_reorder(plan, src, converted);
    src = converted;
  }
  memory bias;
  if (c.bias_term)
    bias = memory({{c.num_output}, dt::f32, tag::x}, cpu.engine, const_cast<float*>(c.bias.data()));
  const bool prelu = a.type == Activation::kPReLU;
  const memory::desc nhwc_src = image_desc(in, in.c, compute);
  const bool banded = !deconv && c.stride_h == 1 && c.dilation_h == 1 && block == out.c &&
                      pd.src_desc(0) == nhwc_src && out.h > 1 && cpu.band_bytes > 0;
  if (banded) {
    build_banded_conv(cpu, plan, op_index, in, out, compute, src, bias, attr, wdims, wtag, strides,
                      dilates, pads);
    return;
  }
  memory weights = prepared_weights(cpu, op_index, pd.weights_desc(0), wdims, wtag);
  Blob& dst_blob = cpu.new_blob(plan, op.outputs[0], out, block);
  memory dst = dst_blob.mem;
  const std::vector<float>* slopes = &a.prelu_slopes;
  Blob dst_copy = dst_blob;
  plan.steps.push_back(
      [&cpu, prim = prim, src, weights, bias, dst, prelu, slopes, dst_copy]() mutable {
        std::unordered_map<int, memory> args{
            {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}};
        if (bias) args[DNNL_ARG_BIAS] = bias;
        cpu.exec(prim, args);
        if (prelu) prelu_in_place(dst_copy, *slopes);
      });
}

}  // namespace upframe::nn::cpu
