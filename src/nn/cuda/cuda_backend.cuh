// The CUDA backend's shared parts, for its prepare_<op> functions (conv.cu, ops.cu; the table
// in cuda_executor.cu): error checks, device buffers, cuDNN descriptors, the plan and the
// backend's state. Blobs are NCHW, fp16 or fp32 storage (the template parameter T of the
// prepare functions), fp32 arithmetic; everything is queued on the executor's own stream.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "nn/cuda_memory_plan.hpp"
#include "nn/graph_runner.hpp"
#include "nn/op_math.hpp"
#include "upframe/error.hpp"
#include "upframe/nn/model.hpp"

namespace upframe::nn::cuda {

inline std::string layer_text(std::string_view layer) {
  return layer.empty() ? std::string() : " (layer " + std::string(layer) + ")";
}

[[noreturn]] inline void fail_cuda(cudaError_t status, const char* what, std::string_view layer,
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

[[noreturn]] inline void fail_cudnn(cudnnStatus_t status, const char* what,
                                    std::string_view layer) {
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
inline DeviceBuffer upload(const void* host, size_t bytes, const std::string& what,
                           cudaStream_t stream) {
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
// (de)convolutions, fp32 for InnerProduct; a norm's gamma and beta are `weights` and `bias`
// (fp32); `act` points at `slopes`.
struct LayerParams {
  DeviceBuffer weights, bias, slopes;
  math::ActivationArgs act;
};

inline size_t plane_of(const Shape& s) { return s.dims == 3 ? size_t(s.h) * s.w : 1; }

// A blob's device address, read when the step runs: the runner binds blobs to buffers after
// every op is prepared.
template <typename T>
struct DeviceBlob {
  void* const* slot;
  T* get() const { return static_cast<T*>(*slot); }
};

struct CudaPlan : PlanBase {
  CudaMemoryPlan memory;
  std::vector<DeviceBuffer> slots;
  std::vector<void*> blob_ptr;        // sized once (DeviceBlob points into it)
  std::vector<DeviceBuffer> scratch;  // padded copies, resampling taps
  std::vector<std::unique_ptr<ConvState>> convs;
  DeviceBuffer staging_in, staging_out;  // for run(): Tensor <-> device

  template <typename T>
  DeviceBlob<T> blob(int b) {
    return {&blob_ptr[b]};
  }
};

class CudaBackend final : public Backend {
 public:
  // Creates the stream and cuDNN handle on `device` and uploads the weights (fp16 for kFp16).
  CudaBackend(const Graph& graph, Precision precision, int device);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  const char* name() const override { return "CUDA"; }
  bool supports_op(const Op& op, std::string* why) const override;
  std::unique_ptr<PlanBase> new_plan(const std::vector<Shape>& shapes) override;
  void prepare_op(PlanBase& plan, int op_index) override;
  size_t blob_bytes(const PlanBase& plan, int b) const override;
  void* allocate_buffer(PlanBase& plan, size_t bytes, const std::string& what) override;
  void bind_blob(PlanBase& plan, int b, void* data) override;
  void synchronize() override;
  bool release_shared_memory() override;

  // Grows the convolution workspace to `bytes` (freed first: old and new need not fit together).
  void reserve_workspace(size_t bytes);
  // Queues the conversion of device fp32 planar `src` into the input blob / of the output blob
  // into device fp32 planar `dst`.
  void load_input(CudaPlan& plan, const float* src);
  void store_output(CudaPlan& plan, float* dst);

  const Graph& graph;
  const Precision precision;
  const int device;
  cudaStream_t stream = nullptr;
  cudnnHandle_t cudnn = nullptr;
  std::map<int, LayerParams> params;  // by op index
  DeviceBuffer workspace;

 private:
  template <typename T>
  void upload_params();
  template <typename T>
  std::vector<T> to_storage(const std::vector<float>& v, const std::string& layer) const;
  LayerParams activation_params(const ActivationSpec& spec, const std::string& name);
  void release();
};

// The prepare functions by op family, for storage type T (float or __half); the table in
// cuda_executor.cu holds both instantiations of each.
template <typename T>
void prepare_convolution(CudaBackend&, CudaPlan&, int op_index);
template <typename T>
void prepare_deconvolution(CudaBackend&, CudaPlan&, int op_index);
template <typename T>
void prepare_activation(CudaBackend&, CudaPlan&, int op_index);  // PReLU, ReLU, Sigmoid, Mish
template <typename T>
void prepare_pixelshuffle(CudaBackend&, CudaPlan&, int op_index);
template <typename T>
void prepare_interp(CudaBackend&, CudaPlan&, int op_index);
template <typename T>
void prepare_binaryop(CudaBackend&, CudaPlan&, int op_index);
template <typename T>
void prepare_eltwise(CudaBackend&, CudaPlan&, int op_index);
template <typename T>
void prepare_concat(CudaBackend&, CudaPlan&, int op_index);
template <typename T>
void prepare_crop(CudaBackend&, CudaPlan&, int op_index);
template <typename T>
void prepare_padding(CudaBackend&, CudaPlan&, int op_index);
template <typename T>
void prepare_pooling(CudaBackend&, CudaPlan&, int op_index);
template <typename T>
void prepare_innerproduct(CudaBackend&, CudaPlan&, int op_index);
template <typename T>
void prepare_norm(CudaBackend&, CudaPlan&, int op_index);  // GroupNorm, LayerNorm
template <typename T>
void prepare_dysample(CudaBackend&, CudaPlan&, int op_index);

}  // namespace upframe::nn::cuda
