// The CUDA executor's entry points that need no CUDA toolkit: the device-memory estimate (pure
// arithmetic on the graph, so a memory manager can call it in any build), and, in a build
// without the CUDA backend, make_cuda_executor throwing a clear error.
#include <algorithm>

#include "nn/graph.hpp"
#include "upframe/error.hpp"
#include "upframe/nn/model.hpp"

namespace upframe::nn {

size_t cuda_bytes_per_input_pixel(const Model& model, Precision precision) {
  const Graph& graph = model.graph();
  constexpr int kProbe = 64;  // everything below scales with the pixel count
  const std::vector<Shape> shapes =
      graph.infer_shapes(Shape{3, model.info().input_channels, kProbe, kProbe});
  const size_t value_bytes = precision == Precision::kFp32 ? 4 : 2;
  std::vector<size_t> bytes(shapes.size());
  size_t largest_blob = 0;
  for (size_t i = 0; i < shapes.size(); ++i) {
    bytes[i] = shapes[i].elements() * value_bytes;
    largest_blob = std::max(largest_blob, bytes[i]);
  }
  size_t total = plan_buffers(graph, bytes).total_bytes();
  // fp32 staging of the input and the output (Tensor <-> device).
  total += (shapes[graph.input_blob].elements() + shapes[graph.output_blob].elements()) * 4;
  // Convolutions whose padding cuDNN cannot express (asymmetric) read a padded copy.
  for (const Op& op : graph.ops) {
    if (op.type != OpType::kConvolution) continue;
    const Shape& in = shapes[op.inputs[0]];
    ConvPads p = resolve_conv_pads(op.conv, in.h, in.w);
    if (p.left != p.right || p.top != p.bottom)
      total += size_t(in.c) * (in.h + p.top + p.bottom) * (in.w + p.left + p.right) * value_bytes;
  }
  // Convolution workspace: the executor picks algorithms needing at most one blob's size.
  total += largest_blob;
  return std::max<size_t>(1, total / (size_t(kProbe) * kProbe));
}

#ifndef UPFRAME_HAVE_CUDA
std::unique_ptr<Executor> make_cuda_executor(std::shared_ptr<const Model> model, Precision, int) {
  throw Error(model ? model->info().name : std::string(),
              "CUDA support not built into this upframe");
}
#endif

}  // namespace upframe::nn
