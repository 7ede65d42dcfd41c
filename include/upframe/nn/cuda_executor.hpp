// The CUDA executor: the Executor interface plus a device-resident entry point for frames that
// already live in GPU memory (the upscaler's device path, the device-check kit, the GPU tests).
// Only for builds with UPFRAME_HAVE_CUDA (it needs the CUDA runtime's header); host compilers
// can include it (no kernels here).
#pragma once

#include <cuda_runtime_api.h>

#include <memory>
#include <vector>

#include "upframe/nn/model.hpp"

namespace upframe::nn::cuda {

struct ImageShape {
  int channels = 0, height = 0, width = 0;
};

// What cuDNN runs for one convolution of a plan (the device-check kit reports it).
struct ConvolutionChoice {
  int algorithm = 0;          // cudnnConvolutionFwdAlgo_t
  int math_type = 0;          // cudnnMathType_t, as set on the descriptor
  bool tensor_cores = false;  // CUDNN_TENSOR_OP_MATH or ..._ALLOW_CONVERSION
  size_t workspace_bytes = 0;
};

class CudaExecutor final : public Executor {
 public:
  // Creates the stream and cuDNN handle on `device` and uploads the weights (fp16 for kFp16).
  CudaExecutor(std::shared_ptr<const Model> model, Precision precision, int device);
  ~CudaExecutor() override;

  // Uploads on the executor's stream, runs, downloads and synchronises the stream.
  Tensor run(const Tensor& input) override;
  Precision precision() const override;
  CudaExecutor* cuda_executor() override { return this; }

  // The output shape for a c x h x w input (builds and caches the plan for that shape).
  ImageShape output_shape(int c, int h, int w);
  // Runs on device memory, asynchronously on stream(): `device_input_chw` is fp32 planar
  // c x h x w, `device_output` receives fp32 planar output_shape(c, h, w). Both must stay
  // valid until the stream reaches this point; the caller synchronises (or records an event).
  void run_device(const float* device_input_chw, int c, int h, int w, float* device_output);
  cudaStream_t stream() const;
  // The choices of the plan for a c x h x w input, in the order the convolutions run (builds
  // the plan).
  std::vector<ConvolutionChoice> convolution_choices(int c, int h, int w);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace upframe::nn::cuda
