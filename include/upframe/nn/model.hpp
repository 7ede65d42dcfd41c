// ncnn models (.param text + .bin weights) read into a small graph of typed ops with named
// blobs, and executors that run it. The reader, graph, buffer plan and tiling are shared by
// every backend; a backend only supplies the ops (see src/nn/).
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "upframe/nn/tensor.hpp"

namespace upframe::nn {

class Graph;  // src/nn/graph.hpp

struct ModelInfo {
  std::string name;  // file stem, e.g. "realesr-animevideov3-x2"
  int scale = 1;     // output size / input size, found by walking the graph
  int input_channels = 3;
  int output_channels = 3;
  // Pixels of input context one output pixel depends on, each side: the least overlap for
  // tiles whose stitched result equals the untiled one.
  int receptive_radius = 0;
  // True when some op (global average pooling, e.g. Real-CUGAN's SE blocks) makes every output
  // pixel depend on the whole input: tiles then differ slightly from the untiled result
  // whatever the overlap.
  bool global_context = false;
};

class Model {
 public:
  // Throws upframe::Error naming the file (and line) for a missing or corrupt model.
  static std::shared_ptr<const Model> load(const std::filesystem::path& param_path,
                                           const std::filesystem::path& bin_path);
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
};

// oneDNN backend. `threads` 0: all cores. Throws upframe::Error if `precision` is not
// available on this CPU (bf16 needs avx512_bf16 or AMX).
std::unique_ptr<Executor> make_cpu_executor(std::shared_ptr<const Model> model, Precision precision,
                                            int threads = 0);
bool cpu_supports_bf16();

}  // namespace upframe::nn
