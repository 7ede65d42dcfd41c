// The CUDA backend's memory plan and the entry points that need no CUDA toolkit: the
// device-memory estimate (so a memory manager can call it in any build), and, in a build
// without the CUDA backend, make_cuda_executor throwing a clear error.
#include "nn/cuda_memory_plan.hpp"

#include <algorithm>

#include "upframe/error.hpp"
#include "upframe/nn/model.hpp"

namespace upframe::nn {

size_t CudaMemoryPlan::total_bytes() const {
  size_t total = buffers.total_bytes() + staging_bytes + largest_blob;
  for (size_t bytes : padded_input_bytes) total += bytes;
  return total;
}

CudaMemoryPlan cuda_memory_plan(const Graph& graph, const std::vector<Shape>& shapes,
                                Precision precision) {
  CudaMemoryPlan plan;
  const size_t value_bytes = precision == Precision::kFp32 ? 4 : 2;
  plan.blob_bytes.resize(shapes.size());
  for (size_t i = 0; i < shapes.size(); ++i) {
    plan.blob_bytes[i] = shapes[i].elements() * value_bytes;
    plan.largest_blob = std::max(plan.largest_blob, plan.blob_bytes[i]);
  }
  plan.buffers = plan_buffers(graph, plan.blob_bytes);
  plan.staging_bytes =
      (shapes[graph.input_blob].elements() + shapes[graph.output_blob].elements()) * 4;
  plan.padded_input_bytes.assign(graph.ops.size(), 0);
  for (size_t i = 0; i < graph.ops.size(); ++i) {
    const Op& op = graph.ops[i];
    if (op.type != OpType::kConvolution) continue;
    const Shape& in = shapes[op.inputs[0]];
    const ConvPads p = resolve_conv_pads(op.get<ConvParams>(), in.h, in.w);
    if (p.left != p.right || p.top != p.bottom)
      plan.padded_input_bytes[i] =
          size_t(in.c) * (in.h + p.top + p.bottom) * (in.w + p.left + p.right) * value_bytes;
  }
  plan.workspace_limit = std::max(plan.largest_blob, kMinCudaWorkspaceBytes);
  return plan;
}

size_t cuda_bytes_per_input_pixel(const Model& model, Precision precision) {
  const Graph& graph = model.graph();
  constexpr int kProbe = 64;  // everything scales with the pixel count
  const std::vector<Shape> shapes =
      graph.infer_shapes(Shape{3, model.info().input_channels, kProbe, kProbe});
  const size_t total = cuda_memory_plan(graph, shapes, precision).total_bytes();
  return std::max<size_t>(1, total / (size_t(kProbe) * kProbe));
}

#ifndef UPFRAME_HAVE_CUDA
std::unique_ptr<Executor> make_cuda_executor(std::shared_ptr<const Model> model, Precision, int) {
  throw Error(model ? model->info().name : std::string(),
              "CUDA support not built into this upframe");
}
#endif

}  // namespace upframe::nn
