// The CUDA backend's ops other than the convolutions: each prepare function queues the kernel
// of kernels.cuh for its op (the per-output index arithmetic of element_ops.hpp).
#include <string>
#include <utility>
#include <vector>

#include "nn/cuda/cuda_backend.cuh"
#include "nn/cuda/kernels.cuh"

namespace upframe::nn::cuda {

namespace {

// What every prepare function starts from: its op, its output and the stream.
template <typename T>
struct OpSite {
  OpSite(CudaBackend& cuda, CudaPlan& plan, int op_index)
      : op(cuda.graph.ops[op_index]),
        out_shape(plan.shapes[op.outputs[0]]),
        n(out_shape.elements()),
        out(plan.blob<T>(op.outputs[0])),
        name(op.name),
        stream(cuda.stream) {}
  const Op& op;
  const Shape& out_shape;
  const size_t n;
  const DeviceBlob<T> out;
  const std::string name;
  const cudaStream_t stream;
};

// GroupNorm's statistics from group_norm_partial_kernel's sums (kernels.cuh).
__global__ void group_norm_finish_kernel(const double* partial, float* stats, int groups,
                                         int chunks, size_t count, float eps) {
  const int g = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (g >= groups) return;
  double sum = 0, square = 0;
  for (int c = 0; c < chunks; ++c) {
    sum += partial[2 * (size_t(g) * chunks + c)];
    square += partial[2 * (size_t(g) * chunks + c) + 1];
  }
  const double mean = sum / double(count);
  const double var = square / double(count) - mean * mean;
  stats[2 * g] = float(mean);
  stats[2 * g + 1] = float(1 / sqrt((var > 0 ? var : 0) + double(eps)));
}

}  // namespace

template <typename T>
void prepare_activation(CudaBackend& cuda, CudaPlan& plan, int op_index) {
  const OpSite<T> site(cuda, plan, op_index);
  const DeviceBlob<T> in = plan.blob<T>(site.op.inputs[0]), out = site.out;
  const math::ActivationArgs act = cuda.params.at(op_index).act;
  const size_t plane = plane_of(site.out_shape), n = site.n;
  const std::string name = site.name;
  const cudaStream_t s = site.stream;
  plan.steps.push_back([=]() {
    bias_activation_kernel<T>
        <<<grid_for(n), kThreads, 0, s>>>(in.get(), out.get(), nullptr, act, plane, n);
    check_launch("activation kernel", name);
  });
}

template <typename T>
void prepare_pixelshuffle(CudaBackend& cuda, CudaPlan& plan, int op_index) {
  const OpSite<T> site(cuda, plan, op_index);
  const Shape& in_shape = plan.shapes[site.op.inputs[0]];
  const DeviceBlob<T> in = plan.blob<T>(site.op.inputs[0]), out = site.out;
  const PixelShuffleParams p = site.op.template get<PixelShuffleParams>();
  const int out_c = site.out_shape.c, in_h = in_shape.h, in_w = in_shape.w;
  const size_t n = site.n;
  const std::string name = site.name;
  const cudaStream_t s = site.stream;
  plan.steps.push_back([=]() {
    pixelshuffle_kernel<T>
        <<<grid_for(n), kThreads, 0, s>>>(in.get(), out.get(), out_c, in_h, in_w, p.factor, p.mode);
    check_launch("pixelshuffle kernel", name);
  });
}

template <typename T>
void prepare_interp(CudaBackend& cuda, CudaPlan& plan, int op_index) {
  const OpSite<T> site(cuda, plan, op_index);
  const Shape& in_shape = plan.shapes[site.op.inputs[0]];
  const Shape out_shape = site.out_shape;
  const auto [xt, yt] = interp_taps(site.op.template get<InterpParams>(), in_shape, out_shape);
  const std::string name = site.name;
  auto upload_taps = [&](const auto& v) {
    plan.scratch.push_back(upload_vector(v, "resampling taps of " + name, cuda.stream));
    return plan.scratch.back().get();
  };
  const ResampleTaps taps{static_cast<const int*>(upload_taps(xt.index)),
                          static_cast<const float*>(upload_taps(xt.weight)),
                          xt.count,
                          static_cast<const int*>(upload_taps(yt.index)),
                          static_cast<const float*>(upload_taps(yt.weight)),
                          yt.count};
  const DeviceBlob<T> in = plan.blob<T>(site.op.inputs[0]), out = site.out;
  const size_t n = site.n;
  const cudaStream_t s = site.stream;
  plan.steps.push_back([=]() {
    resample_kernel<T><<<grid_for(n), kThreads, 0, s>>>(in.get(), out.get(), in_shape.c, in_shape.h,
                                                        in_shape.w, out_shape.h, out_shape.w, taps);
    check_launch("interp kernel", name);
  });
}

template <typename T>
void prepare_binaryop(CudaBackend& cuda, CudaPlan& plan, int op_index) {
  const OpSite<T> site(cuda, plan, op_index);
  const Op& op = site.op;
  const BinaryKind kind = op.template get<BinaryParams>().kind;
  const DeviceBlob<T> a = plan.blob<T>(op.inputs[0]), out = site.out;
  const size_t n = site.n;
  const std::string name = site.name;
  const cudaStream_t s = site.stream;
  if (op.template get<BinaryParams>().with_scalar) {
    const float scalar = op.template get<BinaryParams>().scalar;
    plan.steps.push_back([=]() {
      binary_scalar_kernel<T><<<grid_for(n), kThreads, 0, s>>>(a.get(), scalar, out.get(), kind, n);
      check_launch("binaryop kernel", name);
    });
    return;
  }
  const DeviceBlob<T> b = plan.blob<T>(op.inputs[1]);
  const Shape &sa = plan.shapes[op.inputs[0]], &sb = plan.shapes[op.inputs[1]];
  if (sa == sb) {
    plan.steps.push_back([=]() {
      binary_same_kernel<T><<<grid_for(n), kThreads, 0, s>>>(a.get(), b.get(), out.get(), kind, n);
      check_launch("binaryop kernel", name);
    });
    return;
  }
  // One image and one value per channel (or a single value), as the CPU.
  const bool image_first = sa.elements() >= sb.elements();
  const DeviceBlob<T> image = image_first ? a : b;
  const DeviceBlob<T> small = image_first ? b : a;
  const bool single = (image_first ? sb : sa).elements() == 1;
  const size_t plane = plane_of(image_first ? sa : sb);
  plan.steps.push_back([=]() {
    binary_broadcast_kernel<T><<<grid_for(n), kThreads, 0, s>>>(
        image.get(), small.get(), out.get(), kind, plane, n, single, image_first);
    check_launch("binaryop kernel", name);
  });
}

template <typename T>
void prepare_eltwise(CudaBackend& cuda, CudaPlan& plan, int op_index) {
  const OpSite<T> site(cuda, plan, op_index);
  const Op& op = site.op;
  const EltwiseParams& p = op.template get<EltwiseParams>();
  std::vector<DeviceBlob<T>> inputs;
  EltwiseInputs<T> ins{};
  ins.count = int(op.inputs.size());  // at most kMaxEltwiseInputs (supports_op)
  for (size_t k = 0; k < op.inputs.size(); ++k) {
    inputs.push_back(plan.blob<T>(op.inputs[k]));
    ins.coefficient[k] = p.coefficients.empty() ? 1.f : p.coefficients[k];
  }
  const EltwiseKind kind = p.kind;
  const DeviceBlob<T> out = site.out;
  const size_t n = site.n;
  const std::string name = site.name;
  const cudaStream_t s = site.stream;
  plan.steps.push_back([=]() mutable {
    for (size_t k = 0; k < inputs.size(); ++k) ins.data[k] = inputs[k].get();
    eltwise_kernel<T><<<grid_for(n), kThreads, 0, s>>>(ins, kind, out.get(), n);
    check_launch("eltwise kernel", name);
  });
}

template <typename T>
void prepare_concat(CudaBackend& cuda, CudaPlan& plan, int op_index) {
  const OpSite<T> site(cuda, plan, op_index);
  // Channel concatenation of NCHW images: one copy per input.
  std::vector<std::pair<DeviceBlob<T>, size_t>> parts;
  for (int b : site.op.inputs)
    parts.emplace_back(plan.blob<T>(b), plan.shapes[b].elements() * sizeof(T));
  const DeviceBlob<T> out = site.out;
  const std::string name = site.name;
  const cudaStream_t s = site.stream;
  plan.steps.push_back([=]() {
    char* d = reinterpret_cast<char*>(out.get());
    for (const auto& [src, part_bytes] : parts) {
      check_cuda(cudaMemcpyAsync(d, src.get(), part_bytes, cudaMemcpyDeviceToDevice, s),
                 "concat copy", name);
      d += part_bytes;
    }
  });
}

template <typename T>
void prepare_crop(CudaBackend& cuda, CudaPlan& plan, int op_index) {
  const OpSite<T> site(cuda, plan, op_index);
  const Op& op = site.op;
  const Shape& in_shape = plan.shapes[op.inputs[0]];
  const CropRegion r = resolve_crop(op.template get<CropParams>(), in_shape,
                                    op.inputs.size() > 1 ? &plan.shapes[op.inputs[1]] : nullptr);
  const DeviceBlob<T> in = plan.blob<T>(op.inputs[0]), out = site.out;
  const bool image = in_shape.dims == 3;
  // A vector is cropped along its one axis (w), as the CPU does.
  const int in_h = image ? in_shape.h : 1, in_w = in_shape.w;
  const int co = image ? r.coffset : 0, ho = image ? r.hoffset : 0;
  const int oc = image ? site.out_shape.c : 1, oh = image ? site.out_shape.h : 1;
  const int wo = r.woffset, ow = site.out_shape.w;
  const size_t n = site.n;
  const std::string name = site.name;
  const cudaStream_t s = site.stream;
  plan.steps.push_back([=]() {
    crop_kernel<T>
        <<<grid_for(n), kThreads, 0, s>>>(in.get(), out.get(), in_h, in_w, co, ho, wo, oc, oh, ow);
    check_launch("crop kernel", name);
  });
}

template <typename T>
void prepare_padding(CudaBackend& cuda, CudaPlan& plan, int op_index) {
  const OpSite<T> site(cuda, plan, op_index);
  const Shape in_shape = plan.shapes[site.op.inputs[0]];
  const Shape out_shape = site.out_shape;
  const PaddingParams pp = site.op.template get<PaddingParams>();
  const DeviceBlob<T> in = plan.blob<T>(site.op.inputs[0]), out = site.out;
  const size_t n = site.n;
  const std::string name = site.name;
  const cudaStream_t s = site.stream;
  plan.steps.push_back([=]() {
    padding_kernel<T><<<grid_for(n), kThreads, 0, s>>>(in.get(), out.get(), in_shape.c, in_shape.h,
                                                       in_shape.w, pp.top, pp.left, pp.type,
                                                       pp.value, out_shape.h, out_shape.w);
    check_launch("padding kernel", name);
  });
}

template <typename T>
void prepare_pooling(CudaBackend& cuda, CudaPlan& plan, int op_index) {
  const OpSite<T> site(cuda, plan, op_index);
  const Shape& in_shape = plan.shapes[site.op.inputs[0]];
  const DeviceBlob<T> in = plan.blob<T>(site.op.inputs[0]), out = site.out;
  const bool average = site.op.template get<PoolingParams>().kind == PoolingKind::kAverage;
  const size_t plane = size_t(in_shape.h) * in_shape.w;
  const unsigned channels = unsigned(in_shape.c);
  const std::string name = site.name;
  const cudaStream_t s = site.stream;
  plan.steps.push_back([=]() {
    global_pool_kernel<T><<<channels, kThreads, 0, s>>>(in.get(), out.get(), plane, average);
    check_launch("pooling kernel", name);
  });
}

template <typename T>
void prepare_innerproduct(CudaBackend& cuda, CudaPlan& plan, int op_index) {
  const OpSite<T> site(cuda, plan, op_index);
  const InnerProductParams& ip = site.op.template get<InnerProductParams>();
  const DeviceBlob<T> in = plan.blob<T>(site.op.inputs[0]), out = site.out;
  const LayerParams& p = cuda.params.at(op_index);
  const float* w = p.weights.as<float>();
  const float* bias = ip.bias_term ? p.bias.as<float>() : nullptr;
  const math::ActivationArgs act = p.act;
  const size_t inputs = plan.shapes[site.op.inputs[0]].elements();
  const unsigned outputs = unsigned(ip.num_output);
  const std::string name = site.name;
  const cudaStream_t s = site.stream;
  plan.steps.push_back([=]() {
    inner_product_kernel<T><<<outputs, kThreads, 0, s>>>(in.get(), w, bias, act, out.get(), inputs);
    check_launch("innerproduct kernel", name);
  });
}

template <typename T>
void prepare_norm(CudaBackend& cuda, CudaPlan& plan, int op_index) {
  const OpSite<T> site(cuda, plan, op_index);
  const NormParams& norm = site.op.template get<NormParams>();
  const LayerParams& p = cuda.params.at(op_index);
  const math::NormWeights w = norm.affine
                                  ? math::NormWeights{p.weights.as<float>(), p.bias.as<float>()}
                                  : math::NormWeights{};
  const DeviceBlob<T> in = plan.blob<T>(site.op.inputs[0]), out = site.out;
  const size_t plane = plane_of(site.out_shape), n = site.n;
  const int channels = site.out_shape.c;
  const float eps = norm.eps;
  const std::string name = site.name;
  const cudaStream_t s = site.stream;
  if (site.op.type == OpType::kLayerNorm) {
    plan.steps.push_back([=]() {
      layer_norm_kernel<T>
          <<<grid_for(plane), kThreads, 0, s>>>(in.get(), out.get(), w, channels, plane, eps);
      check_launch("layernorm kernel", name);
    });
    return;
  }
  const int per_group = channels / norm.groups;
  const unsigned groups = unsigned(norm.groups);
  plan.scratch.emplace_back(sizeof(double) * 2 * groups * kGroupNormChunks,
                            "GroupNorm partial sums of " + name);
  double* partial = static_cast<double*>(plan.scratch.back().get());
  plan.scratch.emplace_back(sizeof(float) * 2 * groups, "GroupNorm statistics of " + name);
  float* stats = static_cast<float*>(plan.scratch.back().get());
  const size_t count = plane * per_group;
  plan.steps.push_back([=]() {
    group_norm_partial_kernel<T>
        <<<dim3(kGroupNormChunks, groups), kThreads, 0, s>>>(in.get(), partial, count);
    check_launch("groupnorm partial sums kernel", name);
    group_norm_finish_kernel<<<(groups + kThreads - 1) / kThreads, kThreads, 0, s>>>(
        partial, stats, int(groups), kGroupNormChunks, count, eps);
    check_launch("groupnorm statistics kernel", name);
    group_norm_apply_kernel<T>
        <<<grid_for(n), kThreads, 0, s>>>(in.get(), out.get(), stats, w, plane, per_group, n);
    check_launch("groupnorm kernel", name);
  });
}

template <typename T>
void prepare_dysample(CudaBackend& cuda, CudaPlan& plan, int op_index) {
  const OpSite<T> site(cuda, plan, op_index);
  const Shape& in_shape = plan.shapes[site.op.inputs[0]];
  const DySampleParams p = site.op.template get<DySampleParams>();
  const math::DySampleGeometry g{in_shape.c, in_shape.h, in_shape.w, p.scale, p.groups};
  const DeviceBlob<T> in = plan.blob<T>(site.op.inputs[0]);
  const DeviceBlob<T> offsets = plan.blob<T>(site.op.inputs[1]), out = site.out;
  const size_t n = site.n;
  const std::string name = site.name;
  const cudaStream_t s = site.stream;
  plan.steps.push_back([=]() {
    dysample_kernel<T><<<grid_for(n), kThreads, 0, s>>>(in.get(), offsets.get(), out.get(), g, n);
    check_launch("dysample kernel", name);
  });
}

#define UPFRAME_INSTANTIATE(prepare)                                   \
  template void prepare<float>(CudaBackend&, CudaPlan&, int op_index); \
  template void prepare<__half>(CudaBackend&, CudaPlan&, int op_index);
UPFRAME_INSTANTIATE(prepare_activation)
UPFRAME_INSTANTIATE(prepare_pixelshuffle)
UPFRAME_INSTANTIATE(prepare_interp)
UPFRAME_INSTANTIATE(prepare_binaryop)
UPFRAME_INSTANTIATE(prepare_eltwise)
UPFRAME_INSTANTIATE(prepare_concat)
UPFRAME_INSTANTIATE(prepare_crop)
UPFRAME_INSTANTIATE(prepare_padding)
UPFRAME_INSTANTIATE(prepare_pooling)
UPFRAME_INSTANTIATE(prepare_innerproduct)
UPFRAME_INSTANTIATE(prepare_norm)
UPFRAME_INSTANTIATE(prepare_dysample)
#undef UPFRAME_INSTANTIATE

}  // namespace upframe::nn::cuda
