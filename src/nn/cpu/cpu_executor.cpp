// oneDNN backend. Convolutions and deconvolutions are oneDNN primitives (format_tag::any, fused
// eltwise post-ops), created once per input shape and kept; weights are reordered once. Blobs
// stay in the layout oneDNN picks (nhwc for its fast brgconv kernels, nChw8c / nChw16c, or
// plain nchw) between ops; the other ops are OpenMP loops written for any of those layouts (a
// "pixel" is a block of B channels; nhwc is one block holding every channel).
//
// A stride-1 convolution between nhwc blobs runs in bands of output rows (a band's rows are
// contiguous in nhwc, so a band is a dense tensor at an offset): PReLU is applied to each band
// while it is still in cache, since oneDNN 2.6's prelu post-op drops to the reference
// implementation and a post-op chain cannot express max(x,0) + a*min(x,0) per channel (see
// shared/notes/onednn.md). In bf16, a band is computed in fp32 into a small buffer and written
// to the blob as bf16 by the same pass, when only convolutions read that blob.
#include <omp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <oneapi/dnnl/dnnl.hpp>

#include "nn/graph.hpp"
#include "nn/op_math.hpp"
#include "upframe/error.hpp"
#include "upframe/nn/model.hpp"

namespace upframe::nn {

namespace {

using dnnl::memory;
using dims = memory::dims;
using tag = memory::format_tag;
using dt = memory::data_type;

// Tiling gives up to four shapes per frame size (inner, right, bottom, corner tiles).
constexpr int kMaxCachedShapes = 8;
// Default bytes of fp32 output per band of a banded convolution (see band_bytes_setting).
constexpr size_t kBandBytes = size_t(512) << 10;

struct AlignedBuffer {
  void* ptr = nullptr;
  explicit AlignedBuffer(size_t bytes) {
    ptr = std::aligned_alloc(64, std::max<size_t>(64, (bytes + 63) / 64 * 64));
    if (!ptr) throw Error("", "out of memory (" + std::to_string(bytes) + " bytes)");
  }
  ~AlignedBuffer() { std::free(ptr); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
};

// The channel block of a layout: 1 nchw, 8 nChw8c, 16 nChw16c; `channels` (any other count)
// nhwc. 8 or 16 channels in one block are the same bytes as nhwc.
bool layout_fits(int block, int channels) {
  return block == 1 || block == 8 || block == 16 || block == channels;
}

memory::desc image_desc(const Shape& s, int block, dt type = dt::f32) {
  const tag t = block == s.c && s.c > 1 ? tag::nhwc
                : block == 16           ? tag::nChw16c
                : block == 8            ? tag::nChw8c
                                        : tag::nchw;
  return memory::desc({1, s.c, s.h, s.w}, type, t);
}

// fp32 -> bf16, rounding to nearest even (what oneDNN's reorders do for finite values).
inline uint16_t to_bf16(float v) {
  uint32_t u;
  std::memcpy(&u, &v, sizeof(u));
  u += 0x7FFFu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

// A blob as stored: shape, channel block (0 for vectors) and its oneDNN memory.
struct Blob {
  Shape shape;
  int block = 1;
  memory mem;
  float* data() const { return static_cast<float*>(mem.get_data_handle()); }
};

// Offsets in a blocked image: channel block cb, pixel (y, x) -> B floats.
struct Blocked {
  float* base;
  int block, channels, height, width;
  int channel_blocks() const { return (channels + block - 1) / block; }
  float* pixel(int cb, int y, int x) const {
    return base + ((size_t(cb) * height + y) * width + x) * block;
  }
  float& at(int c, int y, int x) const { return pixel(c / block, y, x)[c % block]; }
};
Blocked view(const Blob& b) { return {b.data(), b.block, b.shape.c, b.shape.h, b.shape.w}; }

// oneDNN reads the padded lanes of the last channel block; keep them zero.
void zero_channel_padding(const Blocked& v) {
  int used = v.channels % v.block;
  if (v.block == 1 || used == 0) return;
  int cb = v.channel_blocks() - 1;
  for (int y = 0; y < v.height; ++y)
    for (int x = 0; x < v.width; ++x) {
      float* p = v.pixel(cb, y, x);
      std::fill(p + used, p + v.block, 0.f);
    }
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

using math::binary;
using math::make_taps;
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

// Per blob: read by at least one op, all of them convolutions, and not the graph's output.
std::vector<bool> conv_only_readers(const Graph& graph) {
  std::vector<bool> only(graph.blob_names.size(), true), read(graph.blob_names.size(), false);
  for (const Op& op : graph.ops)
    for (int b : op.inputs) {
      read[b] = true;
      if (op.type != OpType::kConvolution && op.type != OpType::kDeconvolution) only[b] = false;
    }
  for (size_t b = 0; b < only.size(); ++b) only[b] = only[b] && read[b];
  if (graph.output_blob >= 0) only[graph.output_blob] = false;
  return only;
}

// Bytes of fp32 output per band of a banded convolution: small enough that a band is still in
// cache when its PReLU runs (measured: docs/BENCHMARKS.md); UPFRAME_NN_BAND_BYTES overrides it,
// for measuring (0: no bands, each convolution on the whole image with all threads, then its
// PReLU as a separate pass).
size_t band_bytes_setting() {
  const char* env = std::getenv("UPFRAME_NN_BAND_BYTES");
  return env ? size_t(std::strtoull(env, nullptr, 10)) : kBandBytes;
}

class CpuExecutor final : public Executor {
 public:
  CpuExecutor(std::shared_ptr<const Model> model, Precision precision, int threads)
      : model_(std::move(model)),
        graph_(model_->graph()),
        precision_(precision),
        threads_(threads),
        engine_(dnnl::engine::kind::cpu, 0),
        stream_(engine_),
        conv_only_readers_(conv_only_readers(graph_)) {
    // One stream per thread for the banded convolutions (a stream is not thread-safe).
    const int n = std::max(threads_, omp_get_max_threads());
    for (int t = 0; t < n; ++t) streams_.emplace_back(engine_);
  }

  Precision precision() const override { return precision_; }

  Tensor run(const Tensor& input) override {
    const ModelInfo& info = model_->info();
    if (input.channels != info.input_channels || input.height <= 0 || input.width <= 0 ||
        input.data.size() != size_t(input.channels) * input.height * input.width)
      throw Error(info.name, "input tensor is " + std::to_string(input.channels) + "x" +
                                 std::to_string(input.height) + "x" + std::to_string(input.width) +
                                 ", the model takes " + std::to_string(info.input_channels) +
                                 " channels");
    if (threads_ > 0) omp_set_num_threads(threads_);
    Shape shape{3, input.channels, input.height, input.width};
    Plan& plan = plan_for(shape);
    std::memcpy(plan.blobs[graph_.input_blob].data(), input.data.data(),
                input.data.size() * sizeof(float));
    if (profile_) {
      // UPFRAME_NN_PROFILE=1: time of each step, grouped by op, on the log.
      std::map<std::string, double> ms;
      for (size_t i = 0; i < plan.steps.size(); ++i) {
        auto t0 = std::chrono::steady_clock::now();
        plan.steps[i]();
        ms[plan.step_labels[i]] +=
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count();
      }
      for (auto& [label, t] : ms) spdlog::info("nn profile: {} {:.2f} ms", label, t);
    } else {
      for (auto& step : plan.steps) step();
    }
    stream_.wait();
    const Blob& out = plan.blobs[graph_.output_blob];
    Tensor result(out.shape.c, out.shape.h, out.shape.w);
    std::memcpy(result.data.data(), plan.output_plain.get_data_handle(),
                result.data.size() * sizeof(float));
    return result;
  }

 private:
  struct Plan {
    std::vector<Blob> blobs;
    std::vector<std::function<void()>> steps;
    std::vector<std::string> step_labels;  // the op each step belongs to
    std::vector<std::unique_ptr<AlignedBuffer>> slots;
    memory output_plain;
  };

  Plan& plan_for(const Shape& shape) {
    auto key = std::make_tuple(shape.c, shape.h, shape.w);
    auto it = plans_.find(key);
    if (it != plans_.end()) return *it->second;
    if (plans_.size() >= kMaxCachedShapes) plans_.clear();  // bounded memory for many shapes
    auto plan = std::make_unique<Plan>();
    build(shape, plan.get());
    return *plans_.emplace(key, std::move(plan)).first->second;
  }

  void exec(dnnl::primitive& p, const std::unordered_map<int, memory>& args) {
    p.execute(stream_, args);
    stream_.wait();
  }

  // A memory the step owns (not in the buffer plan): reorder targets and temporaries.
  memory scratch(const memory::desc& d) { return memory(d, engine_); }

  // Returns blob `b` in layout `block`, adding a reorder step into a scratch buffer if needed.
  Blob in_layout(Plan* plan, int b, int block) {
    const Blob& src = plan->blobs[b];
    if (src.block == block || src.shape.dims != 3) return src;
    Blob out{src.shape, block, scratch(image_desc(src.shape, block))};
    add_reorder(plan, src.mem, out.mem);
    return out;
  }

  void add_reorder(Plan* plan, memory from, memory to) {
    dnnl::reorder r(from, to);
    plan->steps.push_back([this, r, from, to]() mutable {
      exec(r, {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}});
    });
  }

  // Blob `b` of shape `s` in layout `block`; bf16 only for blobs that only convolutions read
  // (the other ops read fp32).
  Blob& new_blob(Plan* plan, int b, const Shape& s, int block, dt type = dt::f32) {
    Blob& blob = plan->blobs[b];
    blob.shape = s;
    blob.block = s.dims == 3 ? block : 0;
    memory::desc d =
        s.dims == 3 ? image_desc(s, block, type) : memory::desc({s.w}, dt::f32, tag::x);
    blob.mem = memory(d, engine_, DNNL_MEMORY_NONE);
    return blob;
  }

  static int block_of(const memory::desc& d, const Shape& s) {
    for (int b : {s.c, 1, 8, 16})
      if (d == image_desc(s, b)) return b;
    return -1;
  }

  void build(const Shape& input_shape, Plan* plan) {
    std::vector<Shape> shapes = graph_.infer_shapes(input_shape);
    plan->blobs.resize(graph_.blob_names.size());
    for (size_t i = 0; i < graph_.ops.size(); ++i) {
      const Op& op = graph_.ops[i];
      const Shape& out_shape = shapes[op.outputs[0]];
      switch (op.type) {
        case OpType::kInput:
          new_blob(plan, op.outputs[0], out_shape, 1);
          break;
        case OpType::kConvolution:
        case OpType::kDeconvolution:
          build_conv(plan, int(i), shapes);
          break;
        default:
          build_simple(plan, op, shapes);
      }
      plan->step_labels.resize(plan->steps.size(),
                               std::string(op_type_name(op.type)) + " " + op.name);
    }
    // The output, plain planar for the Tensor.
    const Blob& out = plan->blobs[graph_.output_blob];
    if (out.shape.dims != 3) throw Error(graph_.param_path, "the model's output is not an image");
    if (out.block == 1) {
      plan->output_plain = out.mem;
    } else {
      plan->output_plain = scratch(image_desc(out.shape, 1));
      add_reorder(plan, out.mem, plan->output_plain);
    }
    plan->step_labels.resize(plan->steps.size(), "output reorder");
    // Buffer plan: blobs whose lifetimes do not overlap share a slot.
    std::vector<size_t> bytes(graph_.blob_names.size(), 0);
    for (size_t b = 0; b < bytes.size(); ++b)
      if (plan->blobs[b].mem) bytes[b] = plan->blobs[b].mem.get_desc().get_size();
    BufferPlan buffers = plan_buffers(graph_, bytes);
    for (size_t s = 0; s < buffers.slot_bytes.size(); ++s)
      plan->slots.push_back(std::make_unique<AlignedBuffer>(buffers.slot_bytes[s]));
    for (size_t b = 0; b < bytes.size(); ++b)
      if (plan->blobs[b].mem && buffers.blob_slot[b] >= 0)
        plan->blobs[b].mem.set_data_handle(plan->slots[buffers.blob_slot[b]]->ptr);
    spdlog::debug("nn plan {}x{}x{}: {} steps, {} buffers, {:.1f} MiB", input_shape.c,
                  input_shape.h, input_shape.w, plan->steps.size(), buffers.slot_bytes.size(),
                  buffers.total_bytes() / 1048576.0);
  }

  void build_conv(Plan* plan, int op_index, const std::vector<Shape>& shapes) {
    const Op& op = graph_.ops[op_index];
    const ConvParams& c = op.conv;
    const bool deconv = op.type == OpType::kDeconvolution;
    const Shape& in = shapes[op.inputs[0]];
    const Shape& out = shapes[op.outputs[0]];
    dt compute = precision_ == Precision::kBf16 ? dt::bf16 : dt::f32;
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
                                            dnnl::algorithm::deconvolution_direct, src_md, w_md,
                                            b_md, dst_md, strides, dilates, pad_l, pad_r);
        dnnl::deconvolution_forward::primitive_desc pd(d, attr, engine_);
        return {pd, dnnl::deconvolution_forward(pd)};
      }
      dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference,
                                        dnnl::algorithm::convolution_direct, src_md, w_md, b_md,
                                        dst_md, strides, dilates, pad_l, pad_r);
      dnnl::convolution_forward::primitive_desc pd(d, attr, engine_);
      return {pd, dnnl::convolution_forward(pd)};
    };
    auto [pd, prim] = make_pd(tag::any);
    int block = block_of(pd.dst_desc(0), out);
    if (block < 0) {  // a layout our loops do not read: ask for plain nchw
      std::tie(pd, prim) = make_pd(tag::nchw);
      block = 1;
    }
    std::string impl = pd.impl_info_str();
    spdlog::debug("nn {} {} {}x{}x{} -> {}x{}x{}: {} (dst block {})", op_type_name(op.type),
                  op.name, in.c, in.h, in.w, out.c, out.h, out.w, impl, block);
    if (impl.find("ref") != std::string::npos && !warned_ref_)
      spdlog::warn("oneDNN uses its slow reference implementation for layer {} ({})", op.name,
                   impl),
          warned_ref_ = true;

    // Source in the layout (and data type) the primitive wants.
    memory src = plan->blobs[op.inputs[0]].mem;
    if (src.get_desc() != pd.src_desc(0)) {
      memory converted = scratch(pd.src_desc(0));
      add_reorder(plan, src, converted);
      src = converted;
    }
    memory bias;
    if (c.bias_term)
      bias = memory({{c.num_output}, dt::f32, tag::x}, engine_, const_cast<float*>(c.bias.data()));
    const bool prelu = a.type == Activation::kPReLU;
    const memory::desc nhwc_src = image_desc(in, in.c, compute);
    const bool banded = !deconv && c.stride_h == 1 && c.dilation_h == 1 && block == out.c &&
                        pd.src_desc(0) == nhwc_src && out.h > 1 && band_bytes_ > 0;
    if (banded) {
      build_banded_conv(plan, op_index, in, out, compute, src, bias, attr, wdims, wtag, strides,
                        dilates, pads);
      return;
    }
    memory weights = prepared_weights(op_index, pd.weights_desc(0), wdims, wtag);
    Blob& dst_blob = new_blob(plan, op.outputs[0], out, block);
    memory dst = dst_blob.mem;
    const std::vector<float>* slopes = &a.prelu_slopes;
    Blob dst_copy = dst_blob;
    plan->steps.push_back(
        [this, prim = prim, src, weights, bias, dst, prelu, slopes, dst_copy]() mutable {
          std::unordered_map<int, memory> args{
              {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}};
          if (bias) args[DNNL_ARG_BIAS] = bias;
          exec(prim, args);
          if (prelu) prelu_in_place(dst_copy, *slopes);
        });
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
  void build_banded_conv(Plan* plan, int op_index, const Shape& in, const Shape& out, dt compute,
                         memory src, memory bias, dnnl::primitive_attr attr, const dims& wdims,
                         tag wtag, const dims& strides, const dims& dilates, const ConvPads& pads) {
    const Op& op = graph_.ops[op_index];
    const ConvParams& c = op.conv;
    const bool bf16_out = compute == dt::bf16 && conv_only_readers_[op.outputs[0]];
    const int rows = band_rows(out);
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
        dnnl::convolution_forward::primitive_desc pd(d, attr, engine_);
        scratchpad_bytes = std::max(scratchpad_bytes, pd.scratchpad_desc().get_size());
        spdlog::debug("nn {}: bands of {} rows (pads {}, {}): {}", op.name, out_rows, pad_top,
                      pad_bottom, pd.impl_info_str());
        g = {dnnl::convolution_forward(pd),
             prepared_weights(op_index, pd.weights_desc(), wdims, wtag), pd.scratchpad_desc()};
      }
      bands->push_back({g.prim, g.weights, src_md, dst_md, g.scratchpad_md, y0, out_rows, in_y0});
    }
    Blob& dst_blob = new_blob(plan, op.outputs[0], out, out.c, bf16_out ? dt::bf16 : dt::f32);
    memory dst = dst_blob.mem;
    // Per thread: for bf16 blobs the band in fp32 before its conversion, then the scratchpad.
    const size_t band_f32_bytes = bf16_out ? size_t(rows) * out.w * out.c * sizeof(float) : 0;
    const size_t scratchpad_offset = (band_f32_bytes + 63) / 64 * 64;
    reserve_thread_buffers(scratchpad_offset + scratchpad_bytes);
    std::vector<float> slopes;
    if (c.activation.type == Activation::kPReLU)
      slopes = padded_slopes(c.activation.prelu_slopes, out.c, out.c);
    const size_t src_row_bytes = size_t(in.w) * in.c * memory::data_type_size(compute);
    const int channels = out.c, width = out.w;
    plan->steps.push_back([this, bands, src, bias, dst, slopes, src_row_bytes, scratchpad_offset,
                           channels, width, bf16_out]() {
      auto* src_base = static_cast<char*>(src.get_data_handle());
      auto* dst_base = static_cast<char*>(dst.get_data_handle());
      const float* s = slopes.empty() ? nullptr : slopes.data();
      const int count = int(bands->size());
      const int threads = std::min<int>(int(streams_.size()), omp_get_max_threads());
#pragma omp parallel num_threads(threads)
      {
        const int t = omp_get_thread_num();
        dnnl::stream& stream = streams_[t];
        char* own = static_cast<char*>(thread_buffers_[t]->ptr);
#pragma omp for schedule(dynamic, 1)
        for (int i = 0; i < count; ++i) {
          const ConvBand& b = (*bands)[i];
          const size_t first_value = size_t(b.out_y0) * width * channels;
          auto* band =
              reinterpret_cast<float*>(bf16_out ? own : dst_base) + (bf16_out ? 0 : first_value);
          memory band_src(b.src_md, engine_, src_base + size_t(b.in_y0) * src_row_bytes);
          memory band_dst(b.dst_md, engine_, band);
          memory scratchpad(b.scratchpad_md, engine_, own + scratchpad_offset);
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

  // Grows each thread's buffer (shared by every banded convolution: steps run one at a time)
  // to at least `bytes`.
  void reserve_thread_buffers(size_t bytes) {
    thread_buffers_.resize(streams_.size());
    for (auto& buffer : thread_buffers_)
      if (!buffer || buffer_bytes_ < bytes) buffer = std::make_unique<AlignedBuffer>(bytes);
    buffer_bytes_ = std::max(buffer_bytes_, bytes);
  }

  // Output rows per band: about band_bytes_ of fp32 output.
  int band_rows(const Shape& out) const {
    const size_t row = size_t(out.w) * out.c * sizeof(float);
    return int(std::clamp<size_t>(band_bytes_ / row, 1, size_t(out.h)));
  }

  // Weights in the primitive's layout, reordered once per layer (again only if a new input
  // shape makes oneDNN choose another layout).
  memory prepared_weights(int op_index, const memory::desc& want, const dims& wdims, tag wtag) {
    auto it = weights_.find(op_index);
    if (it != weights_.end() && it->second.get_desc() == want) return it->second;
    const ConvParams& c = graph_.ops[op_index].conv;
    memory user({wdims, dt::f32, wtag}, engine_, const_cast<float*>(c.weights.data()));
    memory prepared(want, engine_);
    dnnl::reorder(user, prepared).execute(stream_, user, prepared);
    stream_.wait();
    weights_[op_index] = prepared;
    return prepared;
  }

  void build_simple(Plan* plan, const Op& op, const std::vector<Shape>& shapes) {
    const Shape out_shape = shapes[op.outputs[0]];
    switch (op.type) {
      case OpType::kPReLU:
      case OpType::kReLU:
      case OpType::kSigmoid: {
        Blob in = plan->blobs[op.inputs[0]];
        Blob out = new_blob(plan, op.outputs[0], out_shape, in.block);
        const ActivationSpec a = activation_of(op);
        plan->steps.push_back([in, out, a]() {
          const math::ActivationArgs args = math::activation_args(a);
          if (in.shape.dims != 3) {
            for (int i = 0; i < in.shape.w; ++i)
              out.data()[i] = math::activate(args, in.data()[i], i);
            return;
          }
          Blocked s = view(in), d = view(out);
#pragma omp parallel for collapse(2)
          for (int c = 0; c < s.channels; ++c)
            for (int y = 0; y < s.height; ++y)
              for (int x = 0; x < s.width; ++x)
                d.at(c, y, x) = math::activate(args, s.at(c, y, x), c);
          zero_channel_padding(d);
        });
        break;
      }
      case OpType::kBinaryOp:
        build_binary(plan, op, out_shape);
        break;
      case OpType::kEltwise: {
        Blob first = plan->blobs[op.inputs[0]];
        std::vector<Blob> ins;
        for (int b : op.inputs) ins.push_back(in_layout(plan, b, first.block));
        Blob out = new_blob(plan, op.outputs[0], out_shape, first.block);
        EltwiseParams p = op.eltwise;
        plan->steps.push_back([ins, out, p]() {
          size_t n = out.mem.get_desc().get_size() / sizeof(float);
          float* d = out.data();
          auto coeff = [&](size_t k) { return p.coefficients.empty() ? 1.f : p.coefficients[k]; };
#pragma omp parallel for
          for (size_t i = 0; i < n; ++i) {
            float v = p.kind == 1 ? ins[0].data()[i] * coeff(0) : ins[0].data()[i];
            for (size_t k = 1; k < ins.size(); ++k) {
              float x = ins[k].data()[i];
              v = p.kind == 0 ? v * x : p.kind == 1 ? v + x * coeff(k) : std::max(v, x);
            }
            d[i] = v;
          }
        });
        break;
      }
      case OpType::kConcat: {
        int block = plan->blobs[op.inputs[0]].block;
        // Channel blocks are outermost: concatenation is one copy per input (not for nhwc,
        // whose one block is the whole pixel).
        for (int b : op.inputs)
          if (plan->blobs[b].block != block || plan->blobs[b].shape.c % block != 0 ||
              !layout_fits(block, out_shape.c))
            block = 1;
        std::vector<Blob> ins;
        for (int b : op.inputs) ins.push_back(in_layout(plan, b, block));
        Blob out = new_blob(plan, op.outputs[0], out_shape, block);
        plan->steps.push_back([ins, out]() {
          char* d = static_cast<char*>(out.mem.get_data_handle());
          for (const Blob& in : ins) {
            size_t n = in.mem.get_desc().get_size();
            std::memcpy(d, in.mem.get_data_handle(), n);
            d += n;
          }
        });
        break;
      }
      case OpType::kCrop: {
        const Shape& in_shape = shapes[op.inputs[0]];
        CropRegion r =
            resolve_crop(op.crop, in_shape, op.inputs.size() > 1 ? &shapes[op.inputs[1]] : nullptr);
        if (in_shape.dims != 3) {
          Blob in = plan->blobs[op.inputs[0]];
          Blob out = new_blob(plan, op.outputs[0], out_shape, 0);
          plan->steps.push_back([in, out, r]() {
            std::memcpy(out.data(), in.data() + r.woffset, r.out.w * sizeof(float));
          });
          break;
        }
        int block = plan->blobs[op.inputs[0]].block;
        if (r.coffset % block != 0 || !layout_fits(block, out_shape.c)) block = 1;
        Blob in = in_layout(plan, op.inputs[0], block);
        Blob out = new_blob(plan, op.outputs[0], out_shape, block);
        plan->steps.push_back([in, out, r]() {
          Blocked s = view(in), d = view(out);
          int cb0 = r.coffset / s.block;
#pragma omp parallel for collapse(2)
          for (int cb = 0; cb < d.channel_blocks(); ++cb)
            for (int y = 0; y < d.height; ++y)
              std::memcpy(d.pixel(cb, y, 0), s.pixel(cb0 + cb, y + r.hoffset, r.woffset),
                          sizeof(float) * d.width * d.block);
          zero_channel_padding(d);
        });
        break;
      }
      case OpType::kPadding: {
        Blob in = plan->blobs[op.inputs[0]];
        Blob out = new_blob(plan, op.outputs[0], out_shape, in.block);
        PaddingParams p = op.padding;
        plan->steps.push_back([in, out, p]() {
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
        break;
      }
      case OpType::kPooling: {
        Blob in = plan->blobs[op.inputs[0]];
        Blob out = new_blob(plan, op.outputs[0], out_shape, 0);
        bool average = op.pooling.kind == 1;
        plan->steps.push_back([in, out, average]() {
          Blocked s = view(in);
          float* d = out.data();
#pragma omp parallel for
          for (int c = 0; c < s.channels; ++c) {
            double sum = 0;
            float best = -INFINITY;
            for (int y = 0; y < s.height; ++y)
              for (int x = 0; x < s.width; ++x) {
                float v = s.at(c, y, x);
                sum += v;
                best = std::max(best, v);
              }
            d[c] = average ? float(sum / (double(s.height) * s.width)) : best;
          }
        });
        break;
      }
      case OpType::kInnerProduct: {
        Blob in = in_layout(plan, op.inputs[0], 1);
        Blob out = new_blob(plan, op.outputs[0], out_shape, 0);
        const InnerProductParams* p = &op.inner;
        plan->steps.push_back([in, out, p]() {
          const math::ActivationArgs args = math::activation_args(p->activation);
          size_t n = in.shape.elements();
          const float* x = in.data();
#pragma omp parallel for
          for (int o = 0; o < p->num_output; ++o) {
            const float* w = p->weights.data() + size_t(o) * n;
            float acc = p->bias_term ? p->bias[o] : 0.f;
            for (size_t i = 0; i < n; ++i) acc += w[i] * x[i];
            out.data()[o] = math::activate(args, acc, o);
          }
        });
        break;
      }
      case OpType::kPixelShuffle: {
        int r = op.upscale_factor, mode = op.pixelshuffle_mode;
        Blob nhwc = plan->blobs[op.inputs[0]];
        if (nhwc.block == nhwc.shape.c && nhwc.block > 1) {
          // Straight from nhwc (a convolution's output): each input pixel's channels are
          // scattered to r x r output pixels of every output channel.
          Blob out = new_blob(plan, op.outputs[0], out_shape, 1);
          plan->steps.push_back([nhwc, out, r, mode]() {
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
          break;
        }
        Blob in = in_layout(plan, op.inputs[0], 1);
        Blob out = new_blob(plan, op.outputs[0], out_shape, 1);
        plan->steps.push_back([in, out, r, mode]() {
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
        break;
      }
      case OpType::kInterp: {
        Blob in = plan->blobs[op.inputs[0]];
        const InterpParams& p = op.interp;
        bool sized = p.output_height != 0 && p.output_width != 0;
        auto xt = std::make_shared<Taps>(
            make_taps(p.resize_type, in.shape.w, out_shape.w, p.width_scale, sized));
        auto yt = std::make_shared<Taps>(
            make_taps(p.resize_type, in.shape.h, out_shape.h, p.height_scale, sized));
        // The filtering loops are written for blocks of 1, 8 and 16 (nearest copies any).
        if (in.block != 1 && in.block != 8 && in.block != 16 && (xt->count > 1 || yt->count > 1))
          in = in_layout(plan, op.inputs[0], 1);
        Blob out = new_blob(plan, op.outputs[0], out_shape, in.block);
        int cbs = (in.shape.c + in.block - 1) / in.block;
        auto tmp =
            std::make_shared<std::vector<float>>(size_t(cbs) * in.block * in.shape.h * out_shape.w);
        plan->steps.push_back(
            [in, out, xt, yt, tmp]() { resample_any(view(in), view(out), *xt, *yt, tmp->data()); });
        break;
      }
      default:
        throw Error(graph_.param_path, std::string("layer ") + op.name + ": " +
                                           op_type_name(op.type) + " is not supported on the CPU");
    }
  }

  void build_binary(Plan* plan, const Op& op, const Shape& out_shape) {
    BinaryParams p = op.binary;
    Blob a = plan->blobs[op.inputs[0]];
    if (p.with_scalar) {
      Blob out = new_blob(plan, op.outputs[0], out_shape, a.block);
      plan->steps.push_back([a, out, p]() {
        size_t n = a.mem.get_desc().get_size() / sizeof(float);
#pragma omp parallel for
        for (size_t i = 0; i < n; ++i) out.data()[i] = binary(p.kind, a.data()[i], p.scalar);
        if (out.shape.dims == 3) zero_channel_padding(view(out));
      });
      return;
    }
    Blob b = plan->blobs[op.inputs[1]];
    if (a.shape == b.shape) {
      b = in_layout(plan, op.inputs[1], a.block);
      Blob out = new_blob(plan, op.outputs[0], out_shape, a.block);
      plan->steps.push_back([a, b, out, p]() {
        size_t n = a.mem.get_desc().get_size() / sizeof(float);
        const float *x = a.data(), *y = b.data();
        float* d = out.data();
        if (p.kind == BinaryKind::kAdd) {
#pragma omp parallel for simd
          for (size_t i = 0; i < n; ++i) d[i] = x[i] + y[i];
        } else {
#pragma omp parallel for
          for (size_t i = 0; i < n; ++i) d[i] = binary(p.kind, x[i], y[i]);
        }
        if (out.shape.dims == 3) zero_channel_padding(view(out));
      });
      return;
    }
    // Broadcast: one image and one value per channel (or a single value).
    bool image_first = a.shape.elements() >= b.shape.elements();
    Blob image = image_first ? a : b;
    Blob small = image_first ? b : a;
    if (small.shape.dims == 3)
      small = in_layout(plan, image_first ? op.inputs[1] : op.inputs[0], 1);
    Blob out = new_blob(plan, op.outputs[0], out_shape, image.block);
    plan->steps.push_back([image, small, out, p, image_first]() {
      Blocked s = view(image), d = view(out);
      const float* v = small.data();
      bool single = small.shape.elements() == 1;
#pragma omp parallel for collapse(2)
      for (int c = 0; c < s.channels; ++c)
        for (int y = 0; y < s.height; ++y) {
          float k = v[single ? 0 : c];
          for (int x = 0; x < s.width; ++x) {
            float e = s.at(c, y, x);
            d.at(c, y, x) = image_first ? binary(p.kind, e, k) : binary(p.kind, k, e);
          }
        }
      zero_channel_padding(d);
    });
  }

  std::shared_ptr<const Model> model_;
  const Graph& graph_;
  Precision precision_;
  int threads_;
  dnnl::engine engine_;
  dnnl::stream stream_;
  std::map<std::tuple<int, int, int>, std::unique_ptr<Plan>> plans_;
  std::map<int, memory> weights_;
  // Per blob: every reader is a convolution (and it is not the output), so it may be bf16.
  std::vector<bool> conv_only_readers_;
  std::vector<dnnl::stream> streams_;
  // Per thread, for the banded convolutions: the band in fp32 (bf16 layers), then the
  // primitive's scratchpad.
  std::vector<std::unique_ptr<AlignedBuffer>> thread_buffers_;
  size_t buffer_bytes_ = 0;
  bool warned_ref_ = false;
  bool profile_ = std::getenv("UPFRAME_NN_PROFILE") != nullptr;
  size_t band_bytes_ = band_bytes_setting();
};

}  // namespace

std::string cpu_isa_name() {
  using isa = dnnl::cpu_isa;
  static const std::pair<isa, const char*> names[] = {{isa::sse41, "sse41"},
                                                      {isa::avx, "avx"},
                                                      {isa::avx2, "avx2"},
                                                      {isa::avx2_vnni, "avx2_vnni"},
                                                      {isa::avx512_mic, "avx512_mic"},
                                                      {isa::avx512_mic_4ops, "avx512_mic_4ops"},
                                                      {isa::avx512_core, "avx512_core"},
                                                      {isa::avx512_core_vnni, "avx512_core_vnni"},
                                                      {isa::avx512_core_bf16, "avx512_core_bf16"},
                                                      {isa::avx512_core_amx, "avx512_core_amx"}};
  const isa effective = dnnl::get_effective_cpu_isa();
  for (const auto& [value, name] : names)
    if (value == effective) return name;
  return "isa " + std::to_string(static_cast<int>(effective));
}

bool cpu_supports_bf16() {
  // The ISA values are nested bit sets: avx512_core_bf16's bits are in every ISA that has it.
  auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  auto bf16 = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_bf16);
  return (isa & bf16) == bf16;
}

std::unique_ptr<Executor> make_cpu_executor(std::shared_ptr<const Model> model, Precision precision,
                                            int threads) {
  if (!model) throw Error("", "no model given to the CPU executor");
  if (precision == Precision::kFp16)
    throw UsageError(model->info().name,
                     "fp16 precision is not available on the CPU; use fp32 (or bf16 where the "
                     "CPU has avx512_bf16 or AMX)");
  if (precision == Precision::kBf16 && !cpu_supports_bf16())
    throw UsageError(model->info().name,
                     "bf16 precision needs a CPU with avx512_bf16 or AMX, and this CPU has "
                     "neither; use fp32");
  if (threads < 0) throw UsageError(model->info().name, "thread count must be 0 (all) or more");
  return std::make_unique<CpuExecutor>(std::move(model), precision, threads);
}

}  // namespace upframe::nn
