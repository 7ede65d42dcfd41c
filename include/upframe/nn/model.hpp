// ncnn models (.param text + .bin weights) read into a small graph of typed ops with named
// blobs, and executors that run it. The reader, graph, shape inference, buffer plan, plan cache
// and tiling are shared by every backend (src/nn/graph_runner.hpp); a backend only supplies a
// prepare function per op type and its storage (src/nn/cpu, src/nn/cuda; docs/ARCHITECTURE.md).
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>

#include "upframe/error.hpp"
#include "upframe/nn/tensor.hpp"

namespace upframe::nn {

class Graph;  // src/nn/graph.hpp
namespace cuda {
class CudaExecutor;  // upframe/nn/cuda_executor.hpp (CUDA builds only)
}

struct ModelInfo {
  std::string name;  // file stem, e.g. "realesr-animevideov3-x2"
  int scale = 1;     // output size / input size, found by walking the graph
  int input_channels = 3;
  int output_channels = 3;
  // Pixels of input context one output pixel depends on, each side: the least overlap for
  // tiles whose stitched result equals the untiled one.
  int receptive_radius = 0;
  // True when some op (global average pooling, e.g. Real-CUGAN's SE blocks; GroupNorm) makes every
  // output pixel depend on the whole input: tiles then differ slightly from the untiled result
  // whatever the overlap.
  bool global_context = false;
  // The factor by which some op downsamples the input (a stride-f convolution, a pixel
  // unshuffle; 1 for none): a tile window must start on a multiple of it for its pixels to be
  // the untiled result's (nn::tile_windows takes it).
  int tile_alignment = 1;
};

class Model {
 public:
  // Throws upframe::Error naming the file (and line) for a missing or corrupt model.
  static std::shared_ptr<const Model> load(const std::filesystem::path& param_path,
                                           const std::filesystem::path& bin_path);
  // A model of an already built graph (finalized, simplified): a part of a loaded model, as
  // the device-check kit runs one op at a time (src/nn/subgraph.hpp). `name` names it in
  // messages. Throws upframe::Error for a graph that cannot take an image.
  static std::shared_ptr<const Model> from_graph(Graph graph, std::string name);
  ~Model();
  const ModelInfo& info() const;
  const Graph& graph() const;

 private:
  Model();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Runs a model on whole images of any size; one per worker (it owns its buffers and the
// primitives created for each input shape). Not thread-safe.
class Executor {
 public:
  virtual ~Executor() = default;
  virtual Tensor run(const Tensor& input) = 0;
  virtual Precision precision() const = 0;
  // The CUDA executor's entry points for frames already in device memory; null on a backend
  // that has none (the CPU).
  virtual cuda::CudaExecutor* cuda_executor() { return nullptr; }
};

// oneDNN backend. `threads` 0: all cores. Throws upframe::Error if `precision` is not
// available on this CPU (bf16 needs avx512_bf16 or AMX).
std::unique_ptr<Executor> make_cpu_executor(std::shared_ptr<const Model> model, Precision precision,
                                            int threads = 0);
bool cpu_supports_bf16();
// The instruction set oneDNN runs on here (dnnl_get_effective_cpu_isa), e.g. "avx512_core_bf16".
std::string cpu_isa_name();

// CUDA backend (cuDNN convolutions, CUDA kernels for the other ops) on device `device`, with its
// own CUDA stream: one executor per pipeline worker. Precision::kFp16 (the default on CUDA:
// fp16 storage, fp32 arithmetic, tensor cores) or kFp32 (no TF32); kBf16 throws UsageError.
// Weights are uploaded at construction. Throws upframe::Error when this upframe was built
// without CUDA or the device cannot be used, CudaOutOfMemory when device memory runs out.
std::unique_ptr<Executor> make_cuda_executor(std::shared_ptr<const Model> model,
                                             Precision precision, int device = 0);

// Device memory ran out (cudaErrorMemoryAllocation or a cuDNN allocation failure), while building
// a plan for a new input shape or running it: the caller can retry with smaller tiles or fewer
// workers (docs/INTERFACE.md, "Pipeline and fallbacks"). `bytes` is the size asked for (0 when
// cuDNN did not say).
class CudaOutOfMemory : public Error {
 public:
  // `what`: the allocation or the step that failed ("activation buffer 2 for input 1080x1920").
  CudaOutOfMemory(const std::string& what, size_t bytes)
      : Error("", "out of GPU memory: " + what +
                      (bytes ? " needs " + std::to_string(bytes) + " bytes" : std::string())),
        bytes_(bytes) {}
  size_t bytes() const { return bytes_; }

 private:
  size_t bytes_;
};

// Device bytes per input pixel the CUDA executor needs for one input shape: the activations of
// the graph's buffer plan at 2 (fp16) or 4 (fp32) bytes a value, the fp32 input and output
// staging, interpolation temporaries, plus a workspace allowance for the convolutions (the
// executor chooses cuDNN algorithms whose workspace fits it). Weights, the CUDA context and
// cuDNN's own memory are fixed costs on top. For a memory manager sizing tiles from
// cudaMemGetInfo; available without CUDA too (pure arithmetic on the graph).
size_t cuda_bytes_per_input_pixel(const Model& model, Precision precision);

}  // namespace upframe::nn
