// Convolution and Deconvolution on CUDA: cuDNN forward convolutions (algorithm and workspace
// chosen when the plan is built, bias and activation in one epilogue kernel), and a direct
// kernel for ncnn's deconvolutions.
#include <climits>
#include <string>

#include "nn/cuda/cuda_backend.cuh"
#include "nn/cuda/kernels.cuh"
#include "upframe/log.hpp"

namespace upframe::nn::cuda {

namespace {

// The fastest algorithm (cuDNN's heuristics) whose workspace fits `limit`; for fp32 only ones
// that do not use tensor cores (TF32 would lose the fp32 accuracy), run with CUDNN_FMA_MATH.
// A candidate counts only once cuDNN sizes its workspace, under the math type it will run
// with, within the limit: the heuristics' `memory` is an estimate for the candidate's own
// math type, and an algorithm the final descriptor does not support fails the size query
// here rather than the first convolution.
void choose_algorithm(cudnnHandle_t cudnn, ConvState* st, bool fp16, cudnnMathType_t math_type,
                      size_t limit, const std::string& name) {
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
  check_cudnn(cudnnGetConvolutionForwardWorkspaceSize(cudnn, st->x.d, st->w.d, st->conv.d, st->y.d,
                                                      st->algo, &st->workspace_bytes),
              "workspace size", name);
  log_message(LogLevel::kDebug, "nn cuda layer " + name + ": algorithm " +
                                    std::to_string(int(st->algo)) + ", workspace " +
                                    std::to_string(st->workspace_bytes) + " bytes");
}

}  // namespace

template <typename T>
void prepare_convolution(CudaBackend& cuda, CudaPlan& plan, int op_index) {
  const Op& op = cuda.graph.ops[op_index];
  const ConvParams& c = op.get<ConvParams>();
  const std::string name = op.name;
  const Shape& in = plan.shapes[op.inputs[0]];
  const Shape& out = plan.shapes[op.outputs[0]];
  const bool fp16 = std::is_same_v<T, __half>;
  const cudnnDataType_t data_type = fp16 ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT;
  const ConvPads pads = resolve_conv_pads(c, in.h, in.w);
  const DeviceBlob<T> input = plan.blob<T>(op.inputs[0]);
  const DeviceBlob<T> dst = plan.blob<T>(op.outputs[0]);
  const cudaStream_t s = cuda.stream;

  // cuDNN pads symmetrically; other pads (SAME with an even extent) read a padded copy, its
  // size from the memory plan.
  Shape conv_in = in;
  int pad_h = pads.top, pad_w = pads.left;
  T* padded = nullptr;
  if (pads.left != pads.right || pads.top != pads.bottom) {
    conv_in.h = in.h + pads.top + pads.bottom;
    conv_in.w = in.w + pads.left + pads.right;
    plan.scratch.emplace_back(plan.memory.padded_input_bytes[op_index], "padded input of " + name);
    padded = plan.scratch.back().as<T>();
    const size_t padded_n = conv_in.elements();
    plan.steps.push_back([=]() {
      padding_kernel<T><<<grid_for(padded_n), kThreads, 0, s>>>(
          input.get(), padded, in.c, in.h, in.w, pads.top, pads.left, PaddingType::kConstant, 0.f,
          conv_in.h, conv_in.w);
      check_launch("convolution padding kernel", name);
    });
    pad_h = pad_w = 0;
  }
  if (conv_in.elements() > size_t(INT_MAX) || out.elements() > size_t(INT_MAX))
    throw Error(cuda.graph.param_path,
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
    throw Error(cuda.graph.param_path, "layer " + name + ": cuDNN gives a " + std::to_string(oc) +
                                           "x" + std::to_string(oh) + "x" + std::to_string(ow) +
                                           " output, the graph " + std::to_string(out.c) + "x" +
                                           std::to_string(out.h) + "x" + std::to_string(out.w));
  check_cudnn(
      cudnnSetTensor4dDescriptor(st->y.d, CUDNN_TENSOR_NCHW, data_type, 1, out.c, out.h, out.w),
      "set output descriptor", name);
  choose_algorithm(cuda.cudnn, st.get(), fp16, math_type, plan.memory.workspace_limit, name);
  cuda.reserve_workspace(st->workspace_bytes);

  const LayerParams& p = cuda.params.at(op_index);
  const T* w = p.weights.as<T>();
  const float* bias = c.bias_term ? p.bias.as<float>() : nullptr;
  const math::ActivationArgs act = p.act;
  const bool epilogue = bias || act.type != Activation::kNone;
  const size_t plane = size_t(out.h) * out.w, n = out.elements();
  ConvState* state = st.get();
  cudnnHandle_t handle = cuda.cudnn;
  const DeviceBuffer* workspace = &cuda.workspace;
  plan.convs.push_back(std::move(st));
  plan.steps.push_back([=]() {
    const float one = 1.f, zero = 0.f;
    const T* src = padded ? padded : input.get();
    check_cudnn(
        cudnnConvolutionForward(handle, &one, state->x.d, src, state->w.d, w, state->conv.d,
                                state->algo, state->workspace_bytes ? workspace->get() : nullptr,
                                state->workspace_bytes, &zero, state->y.d, dst.get()),
        "convolution", name);
    if (epilogue) {
      bias_activation_kernel<T>
          <<<grid_for(n), kThreads, 0, s>>>(dst.get(), dst.get(), bias, act, plane, n);
      check_launch("bias and activation kernel", name);
    }
  });
}

template <typename T>
void prepare_deconvolution(CudaBackend& cuda, CudaPlan& plan, int op_index) {
  const Op& op = cuda.graph.ops[op_index];
  const ConvParams& c = op.get<ConvParams>();
  const Shape& out_shape = plan.shapes[op.outputs[0]];
  const DeconvGeometry g = deconv_geometry(c, plan.shapes[op.inputs[0]], out_shape);
  const LayerParams& p = cuda.params.at(op_index);
  const DeviceBlob<T> in = plan.blob<T>(op.inputs[0]), out = plan.blob<T>(op.outputs[0]);
  const T* w = p.weights.as<T>();
  const float* bias = c.bias_term ? p.bias.as<float>() : nullptr;
  const math::ActivationArgs act = p.act;
  const size_t n = out_shape.elements();
  const std::string name = op.name;
  const cudaStream_t s = cuda.stream;
  plan.steps.push_back([=]() {
    deconv_kernel<T><<<grid_for(n), kThreads, 0, s>>>(in.get(), w, bias, act, out.get(), g);
    check_launch("deconvolution kernel", name);
  });
}

template void prepare_convolution<float>(CudaBackend&, CudaPlan&, int op_index);
template void prepare_convolution<__half>(CudaBackend&, CudaPlan&, int op_index);
template void prepare_deconvolution<float>(CudaBackend&, CudaPlan&, int op_index);
template void prepare_deconvolution<__half>(CudaBackend&, CudaPlan&, int op_index);

}  // namespace upframe::nn::cuda
