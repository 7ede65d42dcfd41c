// CUDA backend of the neural-network executor. Per input shape it builds once and caches a plan:
// the blob shapes (Graph::infer_shapes), device buffers shared by the graph's buffer plan
// (plan_buffers), and one step per op: cuDNN forward convolutions (algorithm and workspace
// chosen at build), a direct kernel for ncnn deconvolutions, and the kernels of kernels.cuh for
// the rest. Blobs are NCHW, fp16 or fp32 storage (the template parameter T), fp32 arithmetic.
// Everything is queued on the executor's own stream.
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "nn/cuda/cuda_executor.hpp"
#include "nn/cuda/kernels.cuh"
#include "nn/graph.hpp"
#include "nn/op_math.hpp"
#include "upframe/error.hpp"
#include "upframe/log.hpp"
#include "upframe/nn/model.hpp"

namespace upframe::nn::cuda {

namespace {

// Tiling gives up to four shapes per frame size (inner, right, bottom, corner tiles).
constexpr int kMaxCachedShapes = 8;
// Convolution workspace allowed whatever the blob sizes (small inputs still get fast
// algorithms); above it, at most the largest blob's size (cuda_bytes_per_input_pixel counts it).
constexpr size_t kMinWorkspaceBytes = size_t(32) << 20;

std::string layer_text(std::string_view layer) {
  return layer.empty() ? std::string() : " (layer " + std::string(layer) + ")";
}

[[noreturn]] void fail_cuda(cudaError_t status, const char* what, std::string_view layer,
                            size_t bytes) {
  if (status == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // not sticky: clear it so the caller can retry with smaller tiles
    throw CudaOutOfMemory(std::string(what) + layer_text(layer), bytes);
  }
  throw Error("",
              std::string("CUDA ") + what + layer_text(layer) +
                  " failed: " + cudaGetErrorName(status) + " (" + cudaGetErrorString(status) + ")",
              ExitCode::kProcessingFailed, "upscale");
}

inline void check_cuda(cudaError_t status, const char* what, std::string_view layer = {},
                       size_t bytes = 0) {
  if (status != cudaSuccess) fail_cuda(status, what, layer, bytes);
}

// After a kernel launch: a bad configuration shows here, faults later on the stream.
inline void check_launch(const char* kernel, std::string_view layer) {
  check_cuda(cudaGetLastError(), kernel, layer);
}

[[noreturn]] void fail_cudnn(cudnnStatus_t status, const char* what, std::string_view layer) {
#if CUDNN_MAJOR >= 9
  const bool out_of_memory = status == CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED ||
                             status == CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED;
#else
  const bool out_of_memory = status == CUDNN_STATUS_ALLOC_FAILED;
#endif
  if (out_of_memory) throw CudaOutOfMemory(std::string("cuDNN ") + what + layer_text(layer), 0);
  throw Error(
      "",
      std::string("cuDNN ") + what + layer_text(layer) + " failed: " + cudnnGetErrorString(status),
      ExitCode::kProcessingFailed, "upscale");
}

inline void check_cudnn(cudnnStatus_t status, const char* what, std::string_view layer = {}) {
  if (status != CUDNN_STATUS_SUCCESS) fail_cudnn(status, what, layer);
}

// Device memory owned by one object; freed on destruction.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(size_t bytes, const std::string& what) : bytes_(bytes) {
    cudaError_t status = cudaMalloc(&ptr_, std::max<size_t>(bytes, 256));
    if (status != cudaSuccess) {
      ptr_ = nullptr;
      if (status == cudaErrorMemoryAllocation) {
        cudaGetLastError();  // not sticky: clear it so the caller can retry with smaller tiles
        throw CudaOutOfMemory(what, bytes);
      }
      fail_cuda(status, ("cudaMalloc of " + what).c_str(), {}, bytes);
    }
  }
  ~DeviceBuffer() { release(); }
  DeviceBuffer(DeviceBuffer&& other) noexcept { *this = std::move(other); }
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
      release();
      ptr_ = std::exchange(other.ptr_, nullptr);
      bytes_ = std::exchange(other.bytes_, 0);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* get() const { return ptr_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  size_t bytes() const { return bytes_; }

 private:
  void release() {
    if (ptr_) cudaFree(ptr_);  // an error here (a dead context) has no one to report to
    ptr_ = nullptr;
    bytes_ = 0;
  }
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Host data copied into a new device buffer, on the executor's stream, which is then
// synchronised (used while building; the host data may be a temporary). Not cudaMemcpy: that
// copies on the legacy default stream, which does not order with our non-blocking stream, and
// from pageable memory it may return before the data has reached the device, so the first kernels
// reading the weights or taps could see stale memory.
DeviceBuffer upload(const void* host, size_t bytes, const std::string& what, cudaStream_t stream) {
  DeviceBuffer buffer(bytes, what);
  if (bytes) {
    check_cuda(cudaMemcpyAsync(buffer.get(), host, bytes, cudaMemcpyHostToDevice, stream),
               ("upload of " + what).c_str());
    check_cuda(cudaStreamSynchronize(stream), ("upload of " + what).c_str());
  }
  return buffer;
}

template <typename V>
DeviceBuffer upload_vector(const std::vector<V>& v, const std::string& what, cudaStream_t stream) {
  return upload(v.data(), v.size() * sizeof(V), what, stream);
}

// cuDNN descriptors, destroyed with their owner.
struct TensorDescriptor {
  cudnnTensorDescriptor_t d = nullptr;
  TensorDescriptor() { check_cudnn(cudnnCreateTensorDescriptor(&d), "create tensor descriptor"); }
  ~TensorDescriptor() { cudnnDestroyTensorDescriptor(d); }
  TensorDescriptor(const TensorDescriptor&) = delete;
  TensorDescriptor& operator=(const TensorDescriptor&) = delete;
};
struct FilterDescriptor {
  cudnnFilterDescriptor_t d = nullptr;
  FilterDescriptor() { check_cudnn(cudnnCreateFilterDescriptor(&d), "create filter descriptor"); }
  ~FilterDescriptor() { cudnnDestroyFilterDescriptor(d); }
  FilterDescriptor(const FilterDescriptor&) = delete;
  FilterDescriptor& operator=(const FilterDescriptor&) = delete;
};
struct ConvolutionDescriptor {
  cudnnConvolutionDescriptor_t d = nullptr;
  ConvolutionDescriptor() {
    check_cudnn(cudnnCreateConvolutionDescriptor(&d), "create convolution descriptor");
  }
  ~ConvolutionDescriptor() { cudnnDestroyConvolutionDescriptor(d); }
  ConvolutionDescriptor(const ConvolutionDescriptor&) = delete;
  ConvolutionDescriptor& operator=(const ConvolutionDescriptor&) = delete;
};

// One convolution of a plan: descriptors and the chosen algorithm.
struct ConvState {
  TensorDescriptor x, y;
  FilterDescriptor w;
  ConvolutionDescriptor conv;
  cudnnConvolutionFwdAlgo_t algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
  size_t workspace_bytes = 0;
};

// A layer's parameters on the device, uploaded once. `weights` are in storage type T for
// (de)convolutions, fp32 for InnerProduct; `act` points at `slopes`.
struct LayerParams {
  DeviceBuffer weights, bias, slopes;
  math::ActivationArgs act;
};

size_t plane_of(const Shape& s) { return s.dims == 3 ? size_t(s.h) * s.w : 1; }

}  // namespace

struct CudaExecutor::Impl {
  struct Plan {
    std::vector<Shape> shapes;
    std::vector<DeviceBuffer> slots;
    std::vector<void*> blob_ptr;
    std::vector<DeviceBuffer> scratch;  // padded copies, resampling taps
    std::vector<std::unique_ptr<ConvState>> convs;
    std::vector<std::function<void()>> steps;
    std::function<void(const float*)> load_input;  // device fp32 planar -> input blob
    std::function<void(float*)> store_output;      // output blob -> device fp32 planar
    DeviceBuffer staging_in, staging_out;          // for run(): Tensor <-> device
  };

  std::shared_ptr<const Model> model;
  const Graph& graph;
  Precision precision;
  int device;
  cudaStream_t stream = nullptr;
  cudnnHandle_t cudnn = nullptr;
  std::map<int, LayerParams> params;  // by op index
  DeviceBuffer workspace;
  std::map<std::tuple<int, int, int>, std::unique_ptr<Plan>> plans;

  Impl(std::shared_ptr<const Model> m, Precision p, int dev)
      : model(std::move(m)), graph(model->graph()), precision(p), device(dev) {
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

  ~Impl() { release(); }

  void release() {
    cudaSetDevice(device);  // the thread destroying it may have another device current
    if (stream) cudaStreamSynchronize(stream);
    plans.clear();
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
  std::vector<T> to_storage(const std::vector<float>& v, const std::string& layer) const {
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

  LayerParams activation_params(const ActivationSpec& spec, const std::string& name) {
    LayerParams p;
    p.slopes = upload_vector(spec.prelu_slopes, "PReLU slopes of " + name, stream);
    p.act = {spec.type, spec.alpha, spec.beta, p.slopes.as<float>(), int(spec.prelu_slopes.size())};
    return p;
  }

  template <typename T>
  void upload_params() {
    for (size_t i = 0; i < graph.ops.size(); ++i) {
      const Op& op = graph.ops[i];
      switch (op.type) {
        case OpType::kConvolution:
        case OpType::kDeconvolution: {
          LayerParams p = activation_params(op.conv.activation, op.name);
          p.weights = upload_vector(to_storage<T>(op.conv.weights, op.name),
                                    "weights of " + op.name, stream);
          if (op.conv.bias_term) p.bias = upload_vector(op.conv.bias, "bias of " + op.name, stream);
          params[int(i)] = std::move(p);
          break;
        }
        case OpType::kInnerProduct: {
          LayerParams p = activation_params(op.inner.activation, op.name);
          p.weights = upload_vector(op.inner.weights, "weights of " + op.name, stream);
          if (op.inner.bias_term)
            p.bias = upload_vector(op.inner.bias, "bias of " + op.name, stream);
          params[int(i)] = std::move(p);
          break;
        }
        case OpType::kPReLU:
        case OpType::kReLU:
        case OpType::kSigmoid: {
          params[int(i)] = activation_params(activation_of(op), op.name);
          break;
        }
        default:
          break;
      }
    }
  }

  void check_input_shape(int c, int h, int w) const {
    const ModelInfo& info = model->info();
    if (c != info.input_channels || h <= 0 || w <= 0)
      throw Error(info.name, "input tensor is " + std::to_string(c) + "x" + std::to_string(h) +
                                 "x" + std::to_string(w) + ", the model takes " +
                                 std::to_string(info.input_channels) + " channels");
  }

  Plan& plan_for(const Shape& shape) {
    auto key = std::make_tuple(shape.c, shape.h, shape.w);
    auto it = plans.find(key);
    if (it != plans.end()) return *it->second;
    if (plans.size() >= kMaxCachedShapes) {  // bounded memory for many shapes
      check_cuda(cudaStreamSynchronize(stream), "synchronise before freeing plans");
      plans.clear();
    }
    auto build_plan = [&]() {
      auto plan = std::make_unique<Plan>();
      if (precision == Precision::kFp16)
        build<__half>(shape, plan.get());
      else
        build<float>(shape, plan.get());
      return plan;
    };
    std::unique_ptr<Plan> plan;
    try {
      plan = build_plan();
    } catch (const CudaOutOfMemory&) {
      if (plans.empty() && !workspace.get()) throw;
      // Plans cached for other shapes (and the workspace sized for them) may hold the memory
      // this one needs: free them and try once more, so a caller retrying with smaller tiles
      // gets the memory back.
      check_cuda(cudaStreamSynchronize(stream), "synchronise before freeing plans");
      plans.clear();
      workspace = DeviceBuffer();
      plan = build_plan();
    }
    return *plans.emplace(key, std::move(plan)).first->second;
  }

  template <typename T>
  T* blob(Plan* plan, int b) {
    return static_cast<T*>(plan->blob_ptr[b]);
  }

  template <typename T>
  void build(const Shape& input_shape, Plan* plan) {
    plan->shapes = graph.infer_shapes(input_shape);
    const std::vector<Shape>& shapes = plan->shapes;
    const Shape& out_shape = shapes[graph.output_blob];
    if (out_shape.dims != 3) throw Error(graph.param_path, "the model's output is not an image");
    std::vector<size_t> bytes(shapes.size());
    size_t largest_blob = 0;
    for (size_t b = 0; b < shapes.size(); ++b) {
      bytes[b] = shapes[b].elements() * sizeof(T);
      largest_blob = std::max(largest_blob, bytes[b]);
    }
    const BufferPlan buffers = plan_buffers(graph, bytes);
    for (size_t s = 0; s < buffers.slot_bytes.size(); ++s)
      plan->slots.emplace_back(buffers.slot_bytes[s], "activation buffer " + std::to_string(s) +
                                                          " for input " +
                                                          std::to_string(input_shape.h) + "x" +
                                                          std::to_string(input_shape.w));
    plan->blob_ptr.assign(shapes.size(), nullptr);
    for (size_t b = 0; b < shapes.size(); ++b)
      if (buffers.blob_slot[b] >= 0) plan->blob_ptr[b] = plan->slots[buffers.blob_slot[b]].get();

    const size_t workspace_limit = std::max(largest_blob, kMinWorkspaceBytes);
    for (size_t i = 0; i < graph.ops.size(); ++i) build_op<T>(plan, int(i), workspace_limit);

    T* input = blob<T>(plan, graph.input_blob);
    const size_t in_n = shapes[graph.input_blob].elements();
    plan->load_input = [this, input, in_n](const float* src) {
      convert_kernel<float, T><<<grid_for(in_n), kThreads, 0, stream>>>(src, input, in_n);
      check_launch("input conversion", {});
    };
    const T* output = blob<T>(plan, graph.output_blob);
    const size_t out_n = out_shape.elements();
    plan->store_output = [this, output, out_n](float* dst) {
      convert_kernel<T, float><<<grid_for(out_n), kThreads, 0, stream>>>(output, dst, out_n);
      check_launch("output conversion", {});
    };
    log_message(LogLevel::kDebug,
                "nn cuda plan " + std::to_string(input_shape.c) + "x" +
                    std::to_string(input_shape.h) + "x" + std::to_string(input_shape.w) + " (" +
                    precision_name(precision) + "): " + std::to_string(plan->steps.size()) +
                    " steps, " + std::to_string(buffers.slot_bytes.size()) + " buffers, " +
                    std::to_string(buffers.total_bytes() >> 20) + " MiB, workspace " +
                    std::to_string(workspace.bytes() >> 20) + " MiB");
  }

  template <typename T>
  void build_op(Plan* plan, int op_index, size_t workspace_limit) {
    const Op& op = graph.ops[op_index];
    const std::vector<Shape>& shapes = plan->shapes;
    const Shape& out_shape = shapes[op.outputs[0]];
    const size_t n = out_shape.elements();
    T* out = blob<T>(plan, op.outputs[0]);
    const std::string name = op.name;
    cudaStream_t s = stream;
    switch (op.type) {
      case OpType::kInput:
        return;
      case OpType::kConvolution:
        build_conv<T>(plan, op_index, workspace_limit);
        return;
      case OpType::kDeconvolution: {
        const ConvParams& c = op.conv;
        const Shape& in_shape = shapes[op.inputs[0]];
        const DeconvGeometry g = deconv_geometry(c, in_shape, out_shape);
        const LayerParams& p = params.at(op_index);
        const T* in = blob<T>(plan, op.inputs[0]);
        const T* w = p.weights.as<T>();
        const float* bias = c.bias_term ? p.bias.as<float>() : nullptr;
        math::ActivationArgs act = p.act;
        plan->steps.push_back([=]() {
          deconv_kernel<T><<<grid_for(n), kThreads, 0, s>>>(in, w, bias, act, out, g);
          check_launch("deconvolution kernel", name);
        });
        return;
      }
      case OpType::kPReLU:
      case OpType::kReLU:
      case OpType::kSigmoid: {
        const T* in = blob<T>(plan, op.inputs[0]);
        math::ActivationArgs act = params.at(op_index).act;
        const size_t plane = plane_of(out_shape);
        plan->steps.push_back([=]() {
          bias_activation_kernel<T>
              <<<grid_for(n), kThreads, 0, s>>>(in, out, nullptr, act, plane, n);
          check_launch("activation kernel", name);
        });
        return;
      }
      case OpType::kPixelShuffle: {
        const Shape& in_shape = shapes[op.inputs[0]];
        const T* in = blob<T>(plan, op.inputs[0]);
        const int r = op.upscale_factor, mode = op.pixelshuffle_mode;
        plan->steps.push_back([=]() {
          pixelshuffle_kernel<T><<<grid_for(n), kThreads, 0, s>>>(in, out, out_shape.c, in_shape.h,
                                                                  in_shape.w, r, mode);
          check_launch("pixelshuffle kernel", name);
        });
        return;
      }
      case OpType::kInterp: {
        const Shape& in_shape = shapes[op.inputs[0]];
        const auto [xt, yt] = interp_taps(op.interp, in_shape, out_shape);
        plan->scratch.push_back(upload_vector(xt.index, "resampling taps of " + name, stream));
        const int* x_index = plan->scratch.back().as<int>();
        plan->scratch.push_back(upload_vector(xt.weight, "resampling taps of " + name, stream));
        const float* x_weight = plan->scratch.back().as<float>();
        plan->scratch.push_back(upload_vector(yt.index, "resampling taps of " + name, stream));
        const int* y_index = plan->scratch.back().as<int>();
        plan->scratch.push_back(upload_vector(yt.weight, "resampling taps of " + name, stream));
        const float* y_weight = plan->scratch.back().as<float>();
        const T* in = blob<T>(plan, op.inputs[0]);
        const int xc = xt.count, yc = yt.count;
        plan->steps.push_back([=]() {
          resample_kernel<T><<<grid_for(n), kThreads, 0, s>>>(
              in, out, in_shape.c, in_shape.h, in_shape.w, out_shape.h, out_shape.w,
              ResampleTaps{x_index, x_weight, xc, y_index, y_weight, yc});
          check_launch("interp kernel", name);
        });
        return;
      }
      case OpType::kBinaryOp: {
        const BinaryKind kind = op.binary.kind;
        const T* a = blob<T>(plan, op.inputs[0]);
        if (op.binary.with_scalar) {
          const float scalar = op.binary.scalar;
          plan->steps.push_back([=]() {
            binary_scalar_kernel<T><<<grid_for(n), kThreads, 0, s>>>(a, scalar, out, kind, n);
            check_launch("binaryop kernel", name);
          });
          return;
        }
        const T* b = blob<T>(plan, op.inputs[1]);
        const Shape &sa = shapes[op.inputs[0]], &sb = shapes[op.inputs[1]];
        if (sa == sb) {
          plan->steps.push_back([=]() {
            binary_same_kernel<T><<<grid_for(n), kThreads, 0, s>>>(a, b, out, kind, n);
            check_launch("binaryop kernel", name);
          });
          return;
        }
        // One image and one value per channel (or a single value), as the CPU.
        const bool image_first = sa.elements() >= sb.elements();
        const T* image = image_first ? a : b;
        const T* small = image_first ? b : a;
        const Shape& image_shape = image_first ? sa : sb;
        const bool single = (image_first ? sb : sa).elements() == 1;
        const size_t plane = plane_of(image_shape);
        plan->steps.push_back([=]() {
          binary_broadcast_kernel<T><<<grid_for(n), kThreads, 0, s>>>(
              image, small, out, kind, plane, n, single, image_first);
          check_launch("binaryop kernel", name);
        });
        return;
      }
      case OpType::kEltwise: {
        if (op.inputs.size() > size_t(kMaxEltwiseInputs))
          throw Error(graph.param_path, "layer " + name + ": Eltwise of more than " +
                                            std::to_string(kMaxEltwiseInputs) +
                                            " inputs is not supported on CUDA");
        EltwiseInputs<T> ins{};
        ins.count = int(op.inputs.size());
        for (size_t k = 0; k < op.inputs.size(); ++k) {
          ins.data[k] = blob<T>(plan, op.inputs[k]);
          ins.coefficient[k] = op.eltwise.coefficients.empty() ? 1.f : op.eltwise.coefficients[k];
        }
        const int kind = op.eltwise.kind;
        plan->steps.push_back([=]() {
          eltwise_kernel<T><<<grid_for(n), kThreads, 0, s>>>(ins, kind, out, n);
          check_launch("eltwise kernel", name);
        });
        return;
      }
      case OpType::kConcat: {
        // Channel concatenation of NCHW images: one copy per input.
        std::vector<std::pair<const void*, size_t>> parts;
        for (int b : op.inputs)
          parts.emplace_back(plan->blob_ptr[b], shapes[b].elements() * sizeof(T));
        plan->steps.push_back([=]() {
          char* d = reinterpret_cast<char*>(out);
          for (const auto& [src, part_bytes] : parts) {
            check_cuda(cudaMemcpyAsync(d, src, part_bytes, cudaMemcpyDeviceToDevice, s),
                       "concat copy", name);
            d += part_bytes;
          }
        });
        return;
      }
      case OpType::kCrop: {
        const Shape& in_shape = shapes[op.inputs[0]];
        const CropRegion r =
            resolve_crop(op.crop, in_shape, op.inputs.size() > 1 ? &shapes[op.inputs[1]] : nullptr);
        const T* in = blob<T>(plan, op.inputs[0]);
        const bool image = in_shape.dims == 3;
        // A vector is cropped along its one axis (w), as the CPU does.
        const int in_h = image ? in_shape.h : 1, in_w = in_shape.w;
        const int co = image ? r.coffset : 0, ho = image ? r.hoffset : 0;
        const int oc = image ? out_shape.c : 1, oh = image ? out_shape.h : 1;
        const int wo = r.woffset, ow = out_shape.w;
        plan->steps.push_back([=]() {
          crop_kernel<T>
              <<<grid_for(n), kThreads, 0, s>>>(in, out, in_h, in_w, co, ho, wo, oc, oh, ow);
          check_launch("crop kernel", name);
        });
        return;
      }
      case OpType::kPadding: {
        const Shape& in_shape = shapes[op.inputs[0]];
        const PaddingParams pp = op.padding;
        const T* in = blob<T>(plan, op.inputs[0]);
        plan->steps.push_back([=]() {
          padding_kernel<T><<<grid_for(n), kThreads, 0, s>>>(in, out, in_shape.c, in_shape.h,
                                                             in_shape.w, pp.top, pp.left, pp.type,
                                                             pp.value, out_shape.h, out_shape.w);
          check_launch("padding kernel", name);
        });
        return;
      }
      case OpType::kPooling: {
        const Shape& in_shape = shapes[op.inputs[0]];
        const T* in = blob<T>(plan, op.inputs[0]);
        const bool average = op.pooling.kind == 1;
        const size_t plane = size_t(in_shape.h) * in_shape.w;
        const unsigned channels = unsigned(in_shape.c);
        plan->steps.push_back([=]() {
          global_pool_kernel<T><<<channels, kThreads, 0, s>>>(in, out, plane, average);
          check_launch("pooling kernel", name);
        });
        return;
      }
      case OpType::kInnerProduct: {
        const T* in = blob<T>(plan, op.inputs[0]);
        const LayerParams& p = params.at(op_index);
        const float* w = p.weights.as<float>();
        const float* bias = op.inner.bias_term ? p.bias.as<float>() : nullptr;
        math::ActivationArgs act = p.act;
        const size_t inputs = shapes[op.inputs[0]].elements();
        const unsigned outputs = unsigned(op.inner.num_output);
        plan->steps.push_back([=]() {
          inner_product_kernel<T><<<outputs, kThreads, 0, s>>>(in, w, bias, act, out, inputs);
          check_launch("innerproduct kernel", name);
        });
        return;
      }
      default:
        throw Error(graph.param_path,
                    "layer " + name + ": " + op_type_name(op.type) + " is not supported on CUDA");
    }
  }

  template <typename T>
  void build_conv(Plan* plan, int op_index, size_t workspace_limit) {
    const Op& op = graph.ops[op_index];
    const ConvParams& c = op.conv;
    const std::string name = op.name;
    const Shape& in = plan->shapes[op.inputs[0]];
    const Shape& out = plan->shapes[op.outputs[0]];
    const bool fp16 = std::is_same_v<T, __half>;
    const cudnnDataType_t data_type = fp16 ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT;
    const ConvPads pads = resolve_conv_pads(c, in.h, in.w);
    const T* src = blob<T>(plan, op.inputs[0]);
    T* dst = blob<T>(plan, op.outputs[0]);
    cudaStream_t s = stream;

    // cuDNN pads symmetrically; other pads (SAME with an even extent) read a padded copy.
    Shape conv_in = in;
    int pad_h = pads.top, pad_w = pads.left;
    if (pads.left != pads.right || pads.top != pads.bottom) {
      conv_in.h = in.h + pads.top + pads.bottom;
      conv_in.w = in.w + pads.left + pads.right;
      plan->scratch.emplace_back(conv_in.elements() * sizeof(T), "padded input of " + name);
      T* padded = plan->scratch.back().as<T>();
      const size_t padded_n = conv_in.elements();
      plan->steps.push_back([=]() {
        padding_kernel<T><<<grid_for(padded_n), kThreads, 0, s>>>(
            src, padded, in.c, in.h, in.w, pads.top, pads.left, 0, 0.f, conv_in.h, conv_in.w);
        check_launch("convolution padding kernel", name);
      });
      src = padded;
      pad_h = pad_w = 0;
    }
    if (conv_in.elements() > size_t(INT_MAX) || out.elements() > size_t(INT_MAX))
      throw Error(graph.param_path,
                  "layer " + name + ": a blob of " +
                      std::to_string(std::max(conv_in.elements(), out.elements())) +
                      " values is too big for cuDNN; use smaller tiles");

    auto st = std::make_unique<ConvState>();
    check_cudnn(cudnnSetTensor4dDescriptor(st->x.d, CUDNN_TENSOR_NCHW, data_type, 1, conv_in.c,
                                           conv_in.h, conv_in.w),
                "set input descriptor", name);
    check_cudnn(cudnnSetFilter4dDescriptor(st->w.d, data_type, CUDNN_TENSOR_NCHW, c.num_output,
                                           in.c / c.groups, c.kernel_h, c.kernel_w),
                "set filter descriptor", name);
    check_cudnn(cudnnSetConvolution2dDescriptor(st->conv.d, pad_h, pad_w, c.stride_h, c.stride_w,
                                                c.dilation_h, c.dilation_w, CUDNN_CROSS_CORRELATION,
                                                CUDNN_DATA_FLOAT),
                "set convolution descriptor", name);
    check_cudnn(cudnnSetConvolutionGroupCount(st->conv.d, c.groups), "set group count", name);
    // fp16: tensor cores. fp32: plain FMA (no TF32), for the 50 dB fp32 target.
    const cudnnMathType_t math_type = fp16 ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH;
    check_cudnn(cudnnSetConvolutionMathType(st->conv.d, math_type), "set math type", name);
    int on = 0, oc = 0, oh = 0, ow = 0;
    check_cudnn(
        cudnnGetConvolution2dForwardOutputDim(st->conv.d, st->x.d, st->w.d, &on, &oc, &oh, &ow),
        "output size", name);
    if (on != 1 || oc != out.c || oh != out.h || ow != out.w)
      throw Error(graph.param_path, "layer " + name + ": cuDNN gives a " + std::to_string(oc) +
                                        "x" + std::to_string(oh) + "x" + std::to_string(ow) +
                                        " output, the graph " + std::to_string(out.c) + "x" +
                                        std::to_string(out.h) + "x" + std::to_string(out.w));
    check_cudnn(
        cudnnSetTensor4dDescriptor(st->y.d, CUDNN_TENSOR_NCHW, data_type, 1, out.c, out.h, out.w),
        "set output descriptor", name);
    choose_algorithm(st.get(), fp16, math_type, workspace_limit, name);
    if (st->workspace_bytes > workspace.bytes()) {
      check_cuda(cudaStreamSynchronize(stream), "synchronise before growing the workspace");
      workspace = DeviceBuffer();  // free first: old and new need not fit together
      workspace = DeviceBuffer(st->workspace_bytes, "cuDNN workspace");
    }

    const LayerParams& p = params.at(op_index);
    const T* w = p.weights.as<T>();
    const float* bias = c.bias_term ? p.bias.as<float>() : nullptr;
    const math::ActivationArgs act = p.act;
    const bool epilogue = bias || act.type != Activation::kNone;
    const size_t plane = size_t(out.h) * out.w, n = out.elements();
    ConvState* state = st.get();
    cudnnHandle_t handle = cudnn;
    plan->convs.push_back(std::move(st));
    plan->steps.push_back([=, this]() {
      const float one = 1.f, zero = 0.f;
      check_cudnn(
          cudnnConvolutionForward(handle, &one, state->x.d, src, state->w.d, w, state->conv.d,
                                  state->algo, state->workspace_bytes ? workspace.get() : nullptr,
                                  state->workspace_bytes, &zero, state->y.d, dst),
          "convolution", name);
      if (epilogue) {
        bias_activation_kernel<T><<<grid_for(n), kThreads, 0, s>>>(dst, dst, bias, act, plane, n);
        check_launch("bias and activation kernel", name);
      }
    });
  }

  // The fastest algorithm (cuDNN's heuristics) whose workspace fits `limit`; for fp32 only ones
  // that do not use tensor cores (TF32 would lose the fp32 accuracy), run with CUDNN_FMA_MATH.
  // A candidate counts only once cuDNN sizes its workspace, under the math type it will run
  // with, within the limit: the heuristics' `memory` is an estimate for the candidate's own
  // math type, and an algorithm the final descriptor does not support fails the size query
  // here rather than the first convolution.
  void choose_algorithm(ConvState* st, bool fp16, cudnnMathType_t math_type, size_t limit,
                        const std::string& name) {
    int max_count = 0;
    check_cudnn(cudnnGetConvolutionForwardAlgorithmMaxCount(cudnn, &max_count), "algorithm count",
                name);
    std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(std::max(max_count, 1));
    int returned = 0;
    check_cudnn(cudnnGetConvolutionForwardAlgorithm_v7(cudnn, st->x.d, st->w.d, st->conv.d, st->y.d,
                                                       int(perf.size()), &returned, perf.data()),
                "algorithm heuristics", name);
    bool found = false;
    for (int i = 0; i < returned && !found; ++i) {
      const cudnnConvolutionFwdAlgoPerf_t& candidate = perf[i];
      if (candidate.status != CUDNN_STATUS_SUCCESS || candidate.memory > limit) continue;
      const bool tensor_ops = candidate.mathType == CUDNN_TENSOR_OP_MATH ||
                              candidate.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
      if (!fp16 && tensor_ops) continue;
      check_cudnn(cudnnSetConvolutionMathType(st->conv.d, fp16 ? candidate.mathType : math_type),
                  "set math type", name);
      size_t bytes = 0;
      if (cudnnGetConvolutionForwardWorkspaceSize(cudnn, st->x.d, st->w.d, st->conv.d, st->y.d,
                                                  candidate.algo, &bytes) != CUDNN_STATUS_SUCCESS ||
          bytes > limit)
        continue;
      st->algo = candidate.algo;
      found = true;
    }
    if (!found) {
      // Implicit GEMM needs no workspace and takes every configuration.
      st->algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
      check_cudnn(cudnnSetConvolutionMathType(st->conv.d, math_type), "set math type", name);
    }
    check_cudnn(cudnnGetConvolutionForwardWorkspaceSize(cudnn, st->x.d, st->w.d, st->conv.d,
                                                        st->y.d, st->algo, &st->workspace_bytes),
                "workspace size", name);
    log_message(LogLevel::kDebug, "nn cuda layer " + name + ": algorithm " +
                                      std::to_string(int(st->algo)) + ", workspace " +
                                      std::to_string(st->workspace_bytes) + " bytes");
  }

  void run_steps(Plan& plan) {
    for (auto& step : plan.steps) step();
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

Precision CudaExecutor::precision() const { return impl_->precision; }

cudaStream_t CudaExecutor::stream() const { return impl_->stream; }

ImageShape CudaExecutor::output_shape(int c, int h, int w) {
  return impl_->with_model_name([&]() {
    impl_->check_input_shape(c, h, w);
    check_cuda(cudaSetDevice(impl_->device), "cudaSetDevice");
    const Shape& out = impl_->plan_for(Shape{3, c, h, w}).shapes[impl_->graph.output_blob];
    return ImageShape{out.c, out.h, out.w};
  });
}

Tensor CudaExecutor::run(const Tensor& input) {
  return impl_->with_model_name([&]() {
    impl_->check_input_shape(input.channels, input.height, input.width);
    if (input.data.size() != size_t(input.channels) * input.height * input.width)
      throw Error(
          impl_->model->info().name,
          "input tensor holds " + std::to_string(input.data.size()) + " values for its shape");
    check_cuda(cudaSetDevice(impl_->device), "cudaSetDevice");
    Impl::Plan& plan = impl_->plan_for(Shape{3, input.channels, input.height, input.width});
    const Shape& out_shape = plan.shapes[impl_->graph.output_blob];
    const size_t in_bytes = input.data.size() * sizeof(float);
    const size_t out_bytes = out_shape.elements() * sizeof(float);
    if (!plan.staging_in.get()) plan.staging_in = DeviceBuffer(in_bytes, "input staging");
    if (!plan.staging_out.get()) plan.staging_out = DeviceBuffer(out_bytes, "output staging");
    cudaStream_t s = impl_->stream;
    check_cuda(cudaMemcpyAsync(plan.staging_in.get(), input.data.data(), in_bytes,
                               cudaMemcpyHostToDevice, s),
               "input upload");
    plan.load_input(plan.staging_in.as<float>());
    impl_->run_steps(plan);
    plan.store_output(plan.staging_out.as<float>());
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
    impl_->check_input_shape(c, h, w);
    check_cuda(cudaSetDevice(impl_->device), "cudaSetDevice");
    Impl::Plan& plan = impl_->plan_for(Shape{3, c, h, w});
    plan.load_input(device_input_chw);
    impl_->run_steps(plan);
    plan.store_output(device_output);
  });
}

// Read back from each convolution's descriptor (the math type choose_algorithm left there).
std::vector<ConvolutionChoice> CudaExecutor::convolution_choices(int c, int h, int w) {
  output_shape(c, h, w);
  std::vector<ConvolutionChoice> out;
  for (const auto& state : impl_->plan_for(Shape{3, c, h, w}).convs) {
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
