// The CUDA backend: its Backend for the GraphRunner (the table of prepare_<op> functions, the
// weights uploaded once, device buffers from the memory plan) and the CudaExecutor around
// them. The ops are in conv.cu and ops.cu; cuda_backend.cuh says how blobs are stored.
#include <array>
#include <cmath>
#include <type_traits>

#include "nn/cuda/cuda_backend.cuh"
#include "nn/cuda/kernels.cuh"
#include "upframe/nn/cuda_executor.hpp"

namespace upframe::nn::cuda {

namespace {

using CudaPrepare = void (*)(CudaBackend&, CudaPlan&, int op_index);
struct CudaOp {
  CudaPrepare fp32 = nullptr, fp16 = nullptr;
};

#define UPFRAME_CUDA_OP(prepare) \
  CudaOp { prepare<float>, prepare<__half> }

// CUDA's prepare functions of each op type by storage type (null: not supported; Input needs no
// step, Split never reaches a backend: Graph::simplify removes it).
const std::array<CudaOp, kOpTypeCount>& prepare_table() {
  static const std::array<CudaOp, kOpTypeCount> table = [] {
    std::array<CudaOp, kOpTypeCount> t{};
    t[int(OpType::kInput)] = {[](CudaBackend&, CudaPlan&, int) {},
                              [](CudaBackend&, CudaPlan&, int) {}};
    t[int(OpType::kConvolution)] = UPFRAME_CUDA_OP(prepare_convolution);
    t[int(OpType::kDeconvolution)] = UPFRAME_CUDA_OP(prepare_deconvolution);
    t[int(OpType::kPReLU)] = UPFRAME_CUDA_OP(prepare_activation);
    t[int(OpType::kReLU)] = UPFRAME_CUDA_OP(prepare_activation);
    t[int(OpType::kSigmoid)] = UPFRAME_CUDA_OP(prepare_activation);
    t[int(OpType::kPixelShuffle)] = UPFRAME_CUDA_OP(prepare_pixelshuffle);
    t[int(OpType::kInterp)] = UPFRAME_CUDA_OP(prepare_interp);
    t[int(OpType::kBinaryOp)] = UPFRAME_CUDA_OP(prepare_binaryop);
    t[int(OpType::kEltwise)] = UPFRAME_CUDA_OP(prepare_eltwise);
    t[int(OpType::kConcat)] = UPFRAME_CUDA_OP(prepare_concat);
    t[int(OpType::kCrop)] = UPFRAME_CUDA_OP(prepare_crop);
    t[int(OpType::kPadding)] = UPFRAME_CUDA_OP(prepare_padding);
    t[int(OpType::kPooling)] = UPFRAME_CUDA_OP(prepare_pooling);
    t[int(OpType::kInnerProduct)] = UPFRAME_CUDA_OP(prepare_innerproduct);
    t[int(OpType::kMish)] = UPFRAME_CUDA_OP(prepare_activation);
    t[int(OpType::kGroupNorm)] = UPFRAME_CUDA_OP(prepare_norm);
    t[int(OpType::kLayerNorm)] = UPFRAME_CUDA_OP(prepare_norm);
    t[int(OpType::kDySample)] = UPFRAME_CUDA_OP(prepare_dysample);
    return t;
  }();
  return table;
}
#undef UPFRAME_CUDA_OP

}  // namespace

CudaBackend::CudaBackend(const Graph& g, Precision p, int dev)
    : graph(g), precision(p), device(dev) {
  check_cuda(cudaSetDevice(device), "cudaSetDevice");
  check_cuda(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  try {
    check_cudnn(cudnnCreate(&cudnn), "cudnnCreate");
    check_cudnn(cudnnSetStream(cudnn, stream), "cudnnSetStream");
    if (precision == Precision::kFp16)
      upload_params<__half>();
    else
      upload_params<float>();
  } catch (...) {
    release();
    throw;
  }
}

CudaBackend::~CudaBackend() { release(); }

void CudaBackend::release() {
  cudaSetDevice(device);  // the thread destroying it may have another device current
  if (stream) cudaStreamSynchronize(stream);
  params.clear();
  workspace = DeviceBuffer();
  if (cudnn) cudnnDestroy(cudnn);
  if (stream) cudaStreamDestroy(stream);
  cudnn = nullptr;
  stream = nullptr;
}

// Weights in storage type T. fp16 holds magnitudes up to 65504: a larger weight would become
// infinity (and every output it touches NaN), so it is refused with the way out.
template <typename T>
std::vector<T> CudaBackend::to_storage(const std::vector<float>& v,
                                       const std::string& layer) const {
  if constexpr (std::is_same_v<T, float>) {
    return v;
  } else {
    constexpr float kHalfMax = 65504.f;
    std::vector<T> out(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      if (!(std::abs(v[i]) <= kHalfMax))
        throw Error(graph.param_path, "layer " + layer + ": weight " + std::to_string(v[i]) +
                                          " does not fit fp16 (at most 65504); use --precision "
                                          "fp32");
      out[i] = __float2half_rn(v[i]);
    }
    return out;
  }
}

LayerParams CudaBackend::activation_params(const ActivationSpec& spec, const std::string& name) {
  LayerParams p;
  p.slopes = upload_vector(spec.prelu_slopes, "PReLU slopes of " + name, stream);
  p.act = {spec.type, spec.alpha, spec.beta, p.slopes.as<float>(), int(spec.prelu_slopes.size())};
  return p;
}

template <typename T>
void CudaBackend::upload_params() {
  for (size_t i = 0; i < graph.ops.size(); ++i) {
    const Op& op = graph.ops[i];
    switch (op.type) {
      case OpType::kConvolution:
      case OpType::kDeconvolution: {
        const ConvParams& c = op.get<ConvParams>();
        LayerParams p = activation_params(c.activation, op.name);
        p.weights =
            upload_vector(to_storage<T>(c.weights, op.name), "weights of " + op.name, stream);
        if (c.bias_term) p.bias = upload_vector(c.bias, "bias of " + op.name, stream);
        params[int(i)] = std::move(p);
        break;
      }
      case OpType::kInnerProduct: {
        const InnerProductParams& ip = op.get<InnerProductParams>();
        LayerParams p = activation_params(ip.activation, op.name);
        p.weights = upload_vector(ip.weights, "weights of " + op.name, stream);
        if (ip.bias_term) p.bias = upload_vector(ip.bias, "bias of " + op.name, stream);
        params[int(i)] = std::move(p);
        break;
      }
      case OpType::kPReLU:
      case OpType::kReLU:
      case OpType::kSigmoid:
      case OpType::kMish:
        params[int(i)] = activation_params(activation_of(op), op.name);
        break;
      case OpType::kGroupNorm:
      case OpType::kLayerNorm: {
        const NormParams& norm = op.get<NormParams>();
        LayerParams p;
        if (norm.affine) {
          p.weights = upload_vector(norm.gamma, "gamma of " + op.name, stream);
          p.bias = upload_vector(norm.beta, "beta of " + op.name, stream);
        }
        params[int(i)] = std::move(p);
        break;
      }
      default:
        break;
    }
  }
}

bool CudaBackend::supports_op(const Op& op, std::string* why) const {
  if (!prepare_table()[int(op.type)].fp32) return false;
  if (op.type == OpType::kEltwise && op.inputs.size() > size_t(kMaxEltwiseInputs)) {
    if (why) *why = "more than " + std::to_string(kMaxEltwiseInputs) + " inputs";
    return false;
  }
  return true;
}

std::unique_ptr<PlanBase> CudaBackend::new_plan(const std::vector<Shape>& shapes) {
  auto plan = std::make_unique<CudaPlan>();
  plan->memory = cuda_memory_plan(graph, shapes, precision);
  plan->blob_ptr.assign(shapes.size(), nullptr);
  return plan;
}

void CudaBackend::prepare_op(PlanBase& plan, int op_index) {
  const CudaOp& op = prepare_table()[int(graph.ops[op_index].type)];
  (precision == Precision::kFp16 ? op.fp16 : op.fp32)(*this, static_cast<CudaPlan&>(plan),
                                                      op_index);
}

size_t CudaBackend::blob_bytes(const PlanBase& plan, int b) const {
  return static_cast<const CudaPlan&>(plan).memory.blob_bytes[b];
}

void* CudaBackend::allocate_buffer(PlanBase& plan, size_t bytes, const std::string& what) {
  auto& slots = static_cast<CudaPlan&>(plan).slots;
  slots.emplace_back(bytes, what);
  return slots.back().get();
}

void CudaBackend::bind_blob(PlanBase& plan, int b, void* data) {
  static_cast<CudaPlan&>(plan).blob_ptr[b] = data;
}

void CudaBackend::synchronize() {
  check_cuda(cudaStreamSynchronize(stream), "synchronise the stream");
}

bool CudaBackend::release_shared_memory() {
  const bool held = workspace.get() != nullptr;
  workspace = DeviceBuffer();
  return held;
}

void CudaBackend::reserve_workspace(size_t bytes) {
  if (bytes <= workspace.bytes()) return;
  check_cuda(cudaStreamSynchronize(stream), "synchronise before growing the workspace");
  workspace = DeviceBuffer();  // free first: old and new need not fit together
  workspace = DeviceBuffer(bytes, "cuDNN workspace");
}

void CudaBackend::load_input(CudaPlan& plan, const float* src) {
  const size_t n = plan.shapes[graph.input_blob].elements();
  void* input = plan.blob_ptr[graph.input_blob];
  if (precision == Precision::kFp16)
    convert_kernel<float, __half>
        <<<grid_for(n), kThreads, 0, stream>>>(src, static_cast<__half*>(input), n);
  else
    convert_kernel<float, float>
        <<<grid_for(n), kThreads, 0, stream>>>(src, static_cast<float*>(input), n);
  check_launch("input conversion", {});
}

void CudaBackend::store_output(CudaPlan& plan, float* dst) {
  const size_t n = plan.shapes[graph.output_blob].elements();
  const void* output = plan.blob_ptr[graph.output_blob];
  if (precision == Precision::kFp16)
    convert_kernel<__half, float>
        <<<grid_for(n), kThreads, 0, stream>>>(static_cast<const __half*>(output), dst, n);
  else
    convert_kernel<float, float>
        <<<grid_for(n), kThreads, 0, stream>>>(static_cast<const float*>(output), dst, n);
  check_launch("output conversion", {});
}

struct CudaExecutor::Impl {
  Impl(std::shared_ptr<const Model> m, Precision precision, int device)
      : model(std::move(m)), backend(model->graph(), precision, device), runner(*model, backend) {}
  ~Impl() {
    cudaSetDevice(backend.device);  // the plans' buffers are freed on the backend's device
    if (backend.stream) cudaStreamSynchronize(backend.stream);
    runner.clear_plans();
  }

  CudaPlan& plan_for(int c, int h, int w) {
    runner.check_input(c, h, w, size_t(c) * h * w);
    check_cuda(cudaSetDevice(backend.device), "cudaSetDevice");
    return static_cast<CudaPlan&>(runner.plan_for(c, h, w));
  }

  // Errors from the CUDA helpers name no file: add the model's.
  template <typename F>
  auto with_model_name(F&& f) {
    try {
      return f();
    } catch (const CudaOutOfMemory&) {
      throw;
    } catch (const Error& e) {
      if (!e.file().empty()) throw;
      throw Error(model->info().name, e.problem(), e.code(), e.stage());
    }
  }

  std::shared_ptr<const Model> model;
  CudaBackend backend;
  GraphRunner runner;
};

CudaExecutor::CudaExecutor(std::shared_ptr<const Model> model, Precision precision, int device) {
  const std::string name = model->info().name;
  try {
    impl_ = std::make_unique<Impl>(std::move(model), precision, device);
  } catch (const CudaOutOfMemory&) {
    throw;
  } catch (const Error& e) {
    if (!e.file().empty()) throw;
    throw Error(name, e.problem(), e.code(), e.stage());
  }
}

CudaExecutor::~CudaExecutor() = default;

Precision CudaExecutor::precision() const { return impl_->backend.precision; }

cudaStream_t CudaExecutor::stream() const { return impl_->backend.stream; }

ImageShape CudaExecutor::output_shape(int c, int h, int w) {
  return impl_->with_model_name([&]() {
    const CudaPlan& plan = impl_->plan_for(c, h, w);
    const Shape& out = plan.shapes[impl_->model->graph().output_blob];
    return ImageShape{out.c, out.h, out.w};
  });
}

Tensor CudaExecutor::run(const Tensor& input) {
  return impl_->with_model_name([&]() {
    impl_->runner.check_input(input.channels, input.height, input.width, input.data.size());
    CudaPlan& plan = impl_->plan_for(input.channels, input.height, input.width);
    const Shape& out_shape = plan.shapes[impl_->model->graph().output_blob];
    const size_t in_bytes = input.data.size() * sizeof(float);
    const size_t out_bytes = out_shape.elements() * sizeof(float);
    if (!plan.staging_in.get()) plan.staging_in = DeviceBuffer(in_bytes, "input staging");
    if (!plan.staging_out.get()) plan.staging_out = DeviceBuffer(out_bytes, "output staging");
    cudaStream_t s = impl_->backend.stream;
    check_cuda(cudaMemcpyAsync(plan.staging_in.get(), input.data.data(), in_bytes,
                               cudaMemcpyHostToDevice, s),
               "input upload");
    impl_->backend.load_input(plan, plan.staging_in.as<float>());
    impl_->runner.run_steps(plan);
    impl_->backend.store_output(plan, plan.staging_out.as<float>());
    Tensor result(out_shape.c, out_shape.h, out_shape.w);
    check_cuda(cudaMemcpyAsync(result.data.data(), plan.staging_out.get(), out_bytes,
                               cudaMemcpyDeviceToHost, s),
               "output download");
    check_cuda(cudaStreamSynchronize(s), "running the network");
    return result;
  });
}

void CudaExecutor::run_device(const float* device_input_chw, int c, int h, int w,
                              float* device_output) {
  impl_->with_model_name([&]() {
    CudaPlan& plan = impl_->plan_for(c, h, w);
    impl_->backend.load_input(plan, device_input_chw);
    impl_->runner.run_steps(plan);
    impl_->backend.store_output(plan, device_output);
  });
}

// Read back from each convolution's descriptor (the math type choose_algorithm left there).
std::vector<ConvolutionChoice> CudaExecutor::convolution_choices(int c, int h, int w) {
  output_shape(c, h, w);
  std::vector<ConvolutionChoice> out;
  for (const auto& state : impl_->plan_for(c, h, w).convs) {
    ConvolutionChoice choice;
    cudnnMathType_t math = CUDNN_DEFAULT_MATH;
    check_cudnn(cudnnGetConvolutionMathType(state->conv.d, &math), "get math type");
    choice.algorithm = int(state->algo);
    choice.math_type = int(math);
    choice.tensor_cores =
        math == CUDNN_TENSOR_OP_MATH || math == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
    choice.workspace_bytes = state->workspace_bytes;
    out.push_back(choice);
  }
  return out;
}

}  // namespace upframe::nn::cuda

namespace upframe::nn {

std::unique_ptr<Executor> make_cuda_executor(std::shared_ptr<const Model> model,
                                             Precision precision, int device) {
  if (!model) throw Error("", "no model given to the CUDA executor");
  if (precision == Precision::kBf16)
    throw UsageError(model->info().name,
                     "bf16 precision is not available on CUDA; use fp16 (the default there) or "
                     "fp32");
  if (device < 0) throw UsageError(model->info().name, "CUDA device index must be 0 or more");
  return std::make_unique<cuda::CudaExecutor>(std::move(model), precision, device);
}

}  // namespace upframe::nn
