// The oneDNN backend: its Backend for the GraphRunner (the table of prepare_<op> functions,
// blob storage, the output in plain layout) and the Executor around them. The ops are in
// conv.cpp, element_ops.cpp and layout_ops.cpp; cpu_backend.hpp says how blobs are stored.
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>

#include "nn/cpu/cpu_backend.hpp"
#include "upframe/error.hpp"
#include "upframe/nn/model.hpp"

namespace upframe::nn {

namespace cpu {

namespace {

// Default bytes of fp32 output per band of a banded convolution (see band_bytes_setting).
constexpr size_t kBandBytes = size_t(512) << 10;

// Bytes of fp32 output per band of a banded convolution: small enough that a band is still in
// cache when its PReLU runs (measured: docs/BENCHMARKS.md); UPFRAME_NN_BAND_BYTES overrides it,
// for measuring (0: no bands, each convolution on the whole image with all threads, then its
// PReLU as a separate pass).
size_t band_bytes_setting() {
  const char* env = std::getenv("UPFRAME_NN_BAND_BYTES");
  return env ? size_t(std::strtoull(env, nullptr, 10)) : kBandBytes;
}

// Per blob: read by at least one op, all of them convolutions, and not the graph's output.
std::vector<bool> find_conv_only_readers(const Graph& graph) {
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

// The CPU's prepare function of each op type (null: not supported; Split never reaches a
// backend, Graph::simplify removes it).
const std::array<CpuPrepare, kOpTypeCount>& prepare_table() {
  static const std::array<CpuPrepare, kOpTypeCount> table = [] {
    std::array<CpuPrepare, kOpTypeCount> t{};
    t[int(OpType::kInput)] = prepare_input;
    t[int(OpType::kConvolution)] = prepare_convolution;
    t[int(OpType::kDeconvolution)] = prepare_convolution;
    t[int(OpType::kPReLU)] = prepare_activation;
    t[int(OpType::kReLU)] = prepare_activation;
    t[int(OpType::kSigmoid)] = prepare_activation;
    t[int(OpType::kPixelShuffle)] = prepare_pixelshuffle;
    t[int(OpType::kInterp)] = prepare_interp;
    t[int(OpType::kBinaryOp)] = prepare_binaryop;
    t[int(OpType::kEltwise)] = prepare_eltwise;
    t[int(OpType::kConcat)] = prepare_concat;
    t[int(OpType::kCrop)] = prepare_crop;
    t[int(OpType::kPadding)] = prepare_padding;
    t[int(OpType::kPooling)] = prepare_pooling;
    t[int(OpType::kInnerProduct)] = prepare_innerproduct;
    t[int(OpType::kMish)] = prepare_activation;
    t[int(OpType::kGroupNorm)] = prepare_norm;
    t[int(OpType::kLayerNorm)] = prepare_norm;
    t[int(OpType::kDySample)] = prepare_dysample;
    return t;
  }();
  return table;
}

}  // namespace

CpuBackend::CpuBackend(const Graph& g, Precision p, int threads)
    : graph(g),
      precision(p),
      engine(dnnl::engine::kind::cpu, 0),
      stream(engine),
      conv_only_readers(find_conv_only_readers(g)),
      band_bytes(band_bytes_setting()) {
  // One stream per thread for the banded convolutions (a stream is not thread-safe).
  const int n = std::max(threads, omp_get_max_threads());
  for (int t = 0; t < n; ++t) streams.emplace_back(engine);
}

bool CpuBackend::supports_op(const Op& op, std::string*) const {
  return prepare_table()[int(op.type)] != nullptr;
}

std::unique_ptr<PlanBase> CpuBackend::new_plan(const std::vector<Shape>& shapes) {
  auto plan = std::make_unique<CpuPlan>();
  plan->blobs.resize(shapes.size());
  return plan;
}

void CpuBackend::prepare_op(PlanBase& plan, int op_index) {
  prepare_table()[int(graph.ops[op_index].type)](*this, static_cast<CpuPlan&>(plan), op_index);
}

void CpuBackend::finish_plan(PlanBase& base) {
  // The output, plain planar for the Tensor.
  CpuPlan& plan = static_cast<CpuPlan&>(base);
  const Blob& out = plan.blobs[graph.output_blob];
  if (out.block == 1) {
    plan.output_plain = out.mem;
  } else {
    plan.output_plain = scratch(image_desc(out.shape, 1));
    add_reorder(plan, out.mem, plan.output_plain);
  }
}

size_t CpuBackend::blob_bytes(const PlanBase& plan, int b) const {
  const memory& mem = static_cast<const CpuPlan&>(plan).blobs[b].mem;
  return mem ? mem.get_desc().get_size() : 0;
}

void* CpuBackend::allocate_buffer(PlanBase& plan, size_t bytes, const std::string&) {
  auto& slots = static_cast<CpuPlan&>(plan).slots;
  slots.push_back(std::make_unique<AlignedBuffer>(bytes));
  return slots.back()->ptr;
}

void CpuBackend::bind_blob(PlanBase& plan, int b, void* data) {
  Blob& blob = static_cast<CpuPlan&>(plan).blobs[b];
  if (blob.mem) blob.mem.set_data_handle(data);
}

void CpuBackend::exec(dnnl::primitive& p, const std::unordered_map<int, memory>& args) {
  p.execute(stream, args);
  stream.wait();
}

Blob CpuBackend::in_layout(CpuPlan& plan, int b, int block) {
  const Blob& src = plan.blobs[b];
  if (src.block == block || src.shape.dims != 3) return src;
  Blob out{src.shape, block, scratch(image_desc(src.shape, block))};
  add_reorder(plan, src.mem, out.mem);
  return out;
}

void CpuBackend::add_reorder(CpuPlan& plan, memory from, memory to) {
  dnnl::reorder r(from, to);
  plan.steps.push_back([this, r, from, to]() mutable {
    exec(r, {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}});
  });
}

// bf16 only for blobs that only convolutions read (the other ops read fp32).
Blob& CpuBackend::new_blob(CpuPlan& plan, int b, const Shape& s, int block, dt type) {
  Blob& blob = plan.blobs[b];
  blob.shape = s;
  blob.block = s.dims == 3 ? block : 0;
  memory::desc d = s.dims == 3 ? image_desc(s, block, type) : memory::desc({s.w}, dt::f32, tag::x);
  blob.mem = memory(d, engine, DNNL_MEMORY_NONE);
  return blob;
}

namespace {

class CpuExecutor final : public Executor {
 public:
  CpuExecutor(std::shared_ptr<const Model> model, Precision precision, int threads)
      : model_(std::move(model)),
        threads_(threads),
        backend_(model_->graph(), precision, threads),
        runner_(*model_, backend_) {}

  Precision precision() const override { return backend_.precision; }

  Tensor run(const Tensor& input) override {
    runner_.check_input(input.channels, input.height, input.width, input.data.size());
    if (threads_ > 0) omp_set_num_threads(threads_);
    auto& plan = static_cast<CpuPlan&>(runner_.plan_for(input.channels, input.height, input.width));
    const Graph& graph = model_->graph();
    std::memcpy(plan.blobs[graph.input_blob].data(), input.data.data(),
                input.data.size() * sizeof(float));
    runner_.run_steps(plan);
    backend_.stream.wait();
    const Blob& out = plan.blobs[graph.output_blob];
    Tensor result(out.shape.c, out.shape.h, out.shape.w);
    std::memcpy(result.data.data(), plan.output_plain.get_data_handle(),
                result.data.size() * sizeof(float));
    return result;
  }

 private:
  std::shared_ptr<const Model> model_;
  int threads_;
  CpuBackend backend_;
  GraphRunner runner_;  // after backend_: its plans go first
};

}  // namespace

}  // namespace cpu

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
  return std::make_unique<cpu::CpuExecutor>(std::move(model), precision, threads);
}

}  // namespace upframe::nn
