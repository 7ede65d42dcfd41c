// The CUDA backend's device memory for one input shape, as pure arithmetic on the graph: the
// backend allocates from it (src/nn/cuda) and the worker-sizing estimate
// (cuda_bytes_per_input_pixel) reads it, in any build.
#pragma once

#include <cstddef>
#include <vector>

#include "nn/graph.hpp"
#include "upframe/nn/tensor.hpp"

namespace upframe::nn {

// Convolution workspace allowed whatever the blob sizes (small inputs still get fast
// algorithms); above it, at most the largest blob's size.
inline constexpr size_t kMinCudaWorkspaceBytes = size_t(32) << 20;

struct CudaMemoryPlan {
  std::vector<size_t> blob_bytes;  // per blob: its values at the storage precision
  BufferPlan buffers;              // plan_buffers of blob_bytes
  // Per op: the padded copy of a convolution's input where cuDNN cannot express its padding
  // (asymmetric); 0 for other ops.
  std::vector<size_t> padded_input_bytes;
  size_t staging_bytes = 0;  // fp32 input and output (Tensor <-> device)
  size_t largest_blob = 0;
  // The workspace a convolution's algorithm may use: max(largest_blob, kMinCudaWorkspaceBytes).
  size_t workspace_limit = 0;

  // What one shape costs: buffers, padded copies, staging and a workspace of the largest
  // blob's size (the executor picks algorithms needing at most that above the minimum).
  size_t total_bytes() const;
};

// `shapes`: Graph::infer_shapes for the input; precision kFp16 stores 2 bytes a value, kFp32 4.
CudaMemoryPlan cuda_memory_plan(const Graph& graph, const std::vector<Shape>& shapes,
                                Precision precision);

}  // namespace upframe::nn
