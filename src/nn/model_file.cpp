#include "upframe/nn/model_file.hpp"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <map>
#include <set>

#include "nn/graph.hpp"
#include "nn/reader.hpp"
#include "upframe/error.hpp"
#include "upframe/weights/architecture.hpp"
#include "upframe/weights/onnx_import.hpp"
#include "upframe/weights/state_dict.hpp"

namespace upframe::nn {

namespace {

namespace fs = std::filesystem;

// A model from a weight file or an ONNX graph, with what model-info says of it.
struct LoadedModel {
  std::shared_ptr<const Model> model;
  ModelFileInfo info;
};

std::string precision_of(const std::map<std::string, int64_t>& elements_by_type) {
  if (elements_by_type.size() == 1) return elements_by_type.begin()->first;
  std::string text = "mixed:";
  for (const auto& [type, n] : elements_by_type) text += " " + type;
  return text;
}

std::vector<uint8_t> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string(), "cannot open the model file");
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

// `ncnn_out`: where the network's ncnn text and weights are copied, when asked.
LoadedModel load_converted(const fs::path& path, NcnnFiles* ncnn_out = nullptr) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec))
    throw Error(path.string(), "model file not found", ExitCode::kUsage);
  LoadedModel out;
  ModelFileInfo& info = out.info;
  weights::NcnnNetwork net;
  if (path.extension() == ".onnx") {
    weights::OnnxImport onnx = weights::import_onnx(read_bytes(path), path.string());
    info.format = "onnx (opset " + std::to_string(onnx.opset) + ")";
    info.family = "ONNX graph";
    info.details = "made by " + onnx.producer;
    info.parameters = onnx.parameters;
    info.weight_precision = onnx.weight_precision;
    net = std::move(onnx.network);
  } else {
    const weights::StateDict dict = weights::read_state_dict(path);
    const weights::Architecture a = weights::recognise_architecture(dict);
    if (a.family == "unknown")
      throw Error(path.string(),
                  "unknown architecture (not ESRGAN, Compact, SPAN, Real-CUGAN or RealPLKSR; see "
                  "docs/MODELS.md)",
                  ExitCode::kUsage);
    net = weights::build_ncnn_network(dict, a, path.string());
    info.format = dict.format;
    info.family = a.family;
    if (a.family == "ESRGAN")
      info.details = std::to_string(a.blocks) + " RRDB blocks, " + std::to_string(a.features) +
                     " features, growth " + std::to_string(a.growth) + ", " + a.key_style +
                     " keys" + (a.unshuffle > 1 ? ", input unshuffled by " + std::to_string(a.unshuffle) : "");
    else if (a.family == "SPAN")
      info.details = std::to_string(a.blocks) + " blocks, " + std::to_string(a.features) +
                     " features, " + (a.normalised_input ? "mean-normalised input" : "no_norm");
    else if (a.family == "Real-CUGAN")
      info.details = "UpCunet" + std::to_string(a.scale) + "x" + (a.pro ? " pro" : "") + ", " +
                     std::to_string(a.features) + " features";
    else if (a.family == "RealPLKSR")
      info.details =
          std::to_string(a.blocks) + " blocks, " + std::to_string(a.features) + " features, " +
          std::to_string(a.large_kernel) + "x" + std::to_string(a.large_kernel) + " kernel on " +
          std::to_string(a.large_kernel_channels) + " channels, " + a.norm +
          (a.attention ? ", EA" : "") + (a.upsampler == "DySample" ? ", DySample upsampler" : "");
    else
      info.details = std::to_string(a.blocks + 2) + " convolutions, " +
                     std::to_string(a.features) + " features, " + a.activation;
    if (!dict.wrapper.empty()) info.details += ", weights under '" + dict.wrapper + "'";
    info.parameters = dict.parameter_count();
    std::map<std::string, int64_t> by_type;
    for (const auto& [key, t] : dict.tensors) by_type[std::string(weights::dtype_name(t.stored))] += t.numel();
    info.weight_precision = precision_of(by_type);
  }
  if (ncnn_out) *ncnn_out = {net.param_text, net.bin};
  Graph graph = read_ncnn_model_text(net.param_text, std::move(net.bin), path.string());
  graph.simplify();
  out.model = Model::from_graph(std::move(graph), path.stem().string());
  return out;
}

}  // namespace

bool is_weight_file_extension(const fs::path& path) {
  static const std::set<std::string> kExtensions = {".pth", ".pt", ".ckpt", ".safetensors",
                                                    ".onnx"};
  return kExtensions.count(path.extension().string()) > 0;
}

std::shared_ptr<const Model> load_model_file(const fs::path& path) {
  if (!is_weight_file_extension(path)) {
    fs::path bin = path;
    bin.replace_extension(".bin");
    return Model::load(path, bin);
  }
  return load_converted(path).model;
}

NcnnFiles convert_to_ncnn(const fs::path& path) {
  if (!is_weight_file_extension(path))
    throw Error(path.string(), "not a weight file or ONNX graph (an ncnn model is already one)");
  NcnnFiles files;
  load_converted(path, &files);
  return files;
}

ModelFileInfo describe_model_file(const fs::path& path) {
  ModelFileInfo info;
  std::shared_ptr<const Model> model;
  if (is_weight_file_extension(path)) {
    LoadedModel loaded = load_converted(path);
    model = loaded.model;
    info = loaded.info;
  } else {
    model = load_model_file(path);
    info.format = "ncnn";
    info.family = "ncnn graph";
    info.parameters = -1;
    info.weight_precision = "as stored in the .bin (fp32 or fp16)";
  }
  const ModelInfo& m = model->info();
  info.scale = m.scale;
  info.input_channels = m.input_channels;
  info.output_channels = m.output_channels;
  info.receptive_radius = m.receptive_radius;
  info.whole_image = m.global_context;
  for (const Op& op : model->graph().ops) {
    const std::string type = op_type_name(op.type);
    auto it = std::find_if(info.ops.begin(), info.ops.end(),
                           [&](const auto& entry) { return entry.first == type; });
    if (it == info.ops.end())
      info.ops.emplace_back(type, 1);
    else
      ++it->second;
  }
  return info;
}

}  // namespace upframe::nn
