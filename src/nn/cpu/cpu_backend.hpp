// The oneDNN backend's shared state and blob layouts, for its prepare_<op> functions
// (conv.cpp, element_ops.cpp, layout_ops.cpp; the table in cpu_executor.cpp).
//
// Convolutions and deconvolutions are oneDNN primitives (format_tag::any, fused eltwise
// post-ops), created once per input shape and kept; weights are reordered once. Blobs stay in
// the layout oneDNN picks (nhwc for its fast brgconv kernels, nChw8c / nChw16c, or plain nchw)
// between ops; the other ops are OpenMP loops written for any of those layouts (a "pixel" is a
// block of B channels; nhwc is one block holding every channel).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "nn/graph_runner.hpp"
#include "upframe/error.hpp"

namespace upframe::nn::cpu {

using dnnl::memory;
using dims = memory::dims;
using tag = memory::format_tag;
using dt = memory::data_type;

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
inline bool layout_fits(int block, int channels) {
  return block == 1 || block == 8 || block == 16 || block == channels;
}

inline memory::desc image_desc(const Shape& s, int block, dt type = dt::f32) {
  const tag t = block == s.c && s.c > 1 ? tag::nhwc
                : block == 16           ? tag::nChw16c
                : block == 8            ? tag::nChw8c
                                        : tag::nchw;
  return memory::desc({1, s.c, s.h, s.w}, type, t);
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
inline Blocked view(const Blob& b) { return {b.data(), b.block, b.shape.c, b.shape.h, b.shape.w}; }

// oneDNN reads the padded lanes of the last channel block; keep them zero.
inline void zero_channel_padding(const Blocked& v) {
  int used = v.channels % v.block;
  if (v.block == 1 || used == 0) return;
  int cb = v.channel_blocks() - 1;
  for (int y = 0; y < v.height; ++y)
    for (int x = 0; x < v.width; ++x) {
      float* p = v.pixel(cb, y, x);
      std::fill(p + used, p + v.block, 0.f);
    }
}

struct CpuPlan : PlanBase {
  std::vector<Blob> blobs;
  std::vector<std::unique_ptr<AlignedBuffer>> slots;
  memory output_plain;
};

// The state the prepare functions share: the engine, prepared weights, per-thread streams and
// buffers of the banded convolutions.
class CpuBackend final : public Backend {
 public:
  CpuBackend(const Graph& graph, Precision precision, int threads);

  const char* name() const override { return "the CPU"; }
  bool supports_op(const Op& op, std::string* why) const override;
  std::unique_ptr<PlanBase> new_plan(const std::vector<Shape>& shapes) override;
  void prepare_op(PlanBase& plan, int op_index) override;
  void finish_plan(PlanBase& plan) override;
  size_t blob_bytes(const PlanBase& plan, int b) const override;
  void* allocate_buffer(PlanBase& plan, size_t bytes, const std::string& what) override;
  void bind_blob(PlanBase& plan, int b, void* data) override;
  void synchronize() override { stream.wait(); }

  // Runs a primitive on the backend's stream and waits.
  void exec(dnnl::primitive& p, const std::unordered_map<int, memory>& args);
  // A memory the step owns (not in the buffer plan): reorder targets and temporaries.
  memory scratch(const memory::desc& d) { return memory(d, engine); }
  // Blob `b` in layout `block`, adding a reorder step into a scratch buffer if needed.
  Blob in_layout(CpuPlan& plan, int b, int block);
  void add_reorder(CpuPlan& plan, memory from, memory to);
  // Blob `b` of shape `s` in layout `block` (bound to its buffer after planning).
  Blob& new_blob(CpuPlan& plan, int b, const Shape& s, int block, dt type = dt::f32);

  const Graph& graph;
  const Precision precision;
  dnnl::engine engine;
  dnnl::stream stream;
  std::map<int, memory> weights;  // by op index, in the layout its primitive wants
  // Per blob: every reader is a convolution (and it is not the output), so it may be bf16.
  std::vector<bool> conv_only_readers;
  std::vector<dnnl::stream> streams;  // one per thread, for the banded convolutions
  // Per thread, for the banded convolutions: the band in fp32 (bf16 layers), then the
  // primitive's scratchpad.
  std::vector<std::unique_ptr<AlignedBuffer>> thread_buffers;
  size_t thread_buffer_bytes = 0;
  bool warned_ref = false;
  size_t band_bytes;  // fp32 output per band of a banded convolution (0: no bands)
};

// The prepare functions, one per op family, in the table of cpu_executor.cpp.
using CpuPrepare = void (*)(CpuBackend&, CpuPlan&, int op_index);
void prepare_input(CpuBackend&, CpuPlan&, int op_index);
void prepare_convolution(CpuBackend&, CpuPlan&, int op_index);  // and Deconvolution
void prepare_activation(CpuBackend&, CpuPlan&, int op_index);   // PReLU, ReLU, Sigmoid, Mish
void prepare_binaryop(CpuBackend&, CpuPlan&, int op_index);
void prepare_eltwise(CpuBackend&, CpuPlan&, int op_index);
void prepare_concat(CpuBackend&, CpuPlan&, int op_index);
void prepare_crop(CpuBackend&, CpuPlan&, int op_index);
void prepare_padding(CpuBackend&, CpuPlan&, int op_index);
void prepare_pooling(CpuBackend&, CpuPlan&, int op_index);
void prepare_innerproduct(CpuBackend&, CpuPlan&, int op_index);
void prepare_norm(CpuBackend&, CpuPlan&, int op_index);  // GroupNorm, LayerNorm
void prepare_pixelshuffle(CpuBackend&, CpuPlan&, int op_index);
void prepare_interp(CpuBackend&, CpuPlan&, int op_index);
void prepare_dysample(CpuBackend&, CpuPlan&, int op_index);

}  // namespace upframe::nn::cpu
