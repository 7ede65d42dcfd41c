#include "upframe/nn/model.hpp"

#include <cmath>

#include "nn/graph.hpp"
#include "nn/reader.hpp"
#include "upframe/error.hpp"
#include "upframe/log.hpp"

namespace upframe::nn {

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::kFp32:
      return "fp32";
    case Precision::kBf16:
      return "bf16";
    case Precision::kFp16:
      return "fp16";
  }
  return "?";
}

struct Model::Impl {
  Graph graph;
  ModelInfo info;
};

Model::Model() : impl_(std::make_unique<Impl>()) {}
Model::~Model() = default;
const ModelInfo& Model::info() const { return impl_->info; }
const Graph& Model::graph() const { return impl_->graph; }

namespace {

// Output size = scale * input size - border, found from two input sizes so a graph that
// trims a border (Real-CUGAN) still gives its true scale. A graph that does not scale by one
// whole factor (not an upscaler; the op tests build such graphs) gets the nearest whole one.
int find_scale(const Graph& g, int channels) {
  std::unique_ptr<Error> first_error;
  for (int base : {64, 256, 1024}) {
    try {
      Shape a = g.infer_shapes(Shape{3, channels, base, base})[g.output_blob];
      Shape b = g.infer_shapes(Shape{3, channels, 2 * base, 2 * base})[g.output_blob];
      int dw = b.w - a.w, dh = b.h - a.h;
      if (dw != dh || dw % base != 0 || a.dims != 3)
        log_message(LogLevel::kDebug,
                    g.param_path + ": the graph does not scale by one whole factor");
      return std::max(1, int(std::lround(double(dw) / base)));
    } catch (const Error& e) {
      // Too small for the graph (crops, strides)? Try larger; else report the first problem.
      if (!first_error) first_error = std::make_unique<Error>(e);
    }
  }
  throw *first_error;
}

}  // namespace

std::shared_ptr<const Model> Model::load(const std::filesystem::path& param_path,
                                         const std::filesystem::path& bin_path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(param_path, ec))
    throw Error(param_path.string(), "model description (.param) not found");
  if (!std::filesystem::is_regular_file(bin_path, ec))
    throw Error(bin_path.string(), "model weights (.bin) not found");
  Graph graph = read_ncnn_model(param_path, bin_path);
  graph.simplify();
  return from_graph(std::move(graph), param_path.stem().string());
}

std::shared_ptr<const Model> Model::from_graph(Graph graph, std::string name) {
  std::shared_ptr<Model> model(new Model());
  Graph& g = model->impl_->graph;
  g = std::move(graph);

  ModelInfo& info = model->impl_->info;
  info.name = std::move(name);
  // Input channels: declared by the Input layer, else implied by the first layer's weights.
  info.input_channels = 0;
  for (const Op& op : g.ops) {
    if (op.type == OpType::kInput && op.get<InputParams>().channels > 0)
      info.input_channels = op.get<InputParams>().channels;
  }
  if (info.input_channels == 0) {
    for (const Op& op : g.ops) {
      bool reads_input = !op.inputs.empty() && op.inputs[0] == g.input_blob;
      if (reads_input && (op.type == OpType::kConvolution || op.type == OpType::kDeconvolution)) {
        const ConvParams& c = op.get<ConvParams>();
        info.input_channels =
            int(c.weights.size() / (size_t(c.num_output) * c.kernel_w * c.kernel_h)) * c.groups;
        break;
      }
    }
  }
  if (info.input_channels == 0) info.input_channels = 3;
  info.scale = find_scale(g, info.input_channels);
  info.output_channels = g.infer_shapes(Shape{3, info.input_channels, 256, 256})[g.output_blob].c;
  info.receptive_radius = g.receptive_radius(&info.global_context, &info.tile_alignment);
  log_message(LogLevel::kDebug, "model " + info.name + ": " + std::to_string(g.ops.size()) +
                                    " ops, scale " + std::to_string(info.scale) +
                                    ", receptive radius " + std::to_string(info.receptive_radius) +
                                    " px" +
                                    (info.global_context ? " (plus whole-image statistics)" : ""));
  return model;
}

}  // namespace upframe::nn
