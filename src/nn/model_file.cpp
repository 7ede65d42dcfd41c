#include "upframe/nn/model_file.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "nn/graph.hpp"
#include "nn/reader.hpp"
#include "upframe/error.hpp"
#include "upframe/weights/architecture.hpp"
#include "upframe/weights/state_dict.hpp"

namespace upframe::nn {

namespace {

namespace fs = std::filesystem;

struct LoadedWeightModel {
  std::shared_ptr<const Model> model;
  weights::StateDict dict;
  weights::Architecture arch;
};

LoadedWeightModel load_weight_model(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw Error(path.string(), "model file not found", ExitCode::kUsage);
  LoadedWeightModel out;
  out.dict = weights::read_state_dict(path);
  out.arch = weights::recognise_architecture(out.dict);
  if (out.arch.family == "unknown")
    throw Error(path.string(), "unknown architecture (not ESRGAN or Compact; see docs/MODELS.md)",
                ExitCode::kUsage);
  weights::NcnnNetwork net = weights::build_ncnn_network(out.dict, out.arch, path.string());
  Graph graph = read_ncnn_model_text(net.param_text, std::move(net.bin), path.string());
  graph.simplify();
  out.model = Model::from_graph(std::move(graph), path.stem().string());
  return out;
}

}  // namespace

bool is_weight_file_extension(const fs::path& path) {
  static const std::set<std::string> kExtensions = {".pth", ".pt", ".ckpt", ".safetensors"};
  return kExtensions.count(path.extension().string()) > 0;
}

std::shared_ptr<const Model> load_model_file(const fs::path& path) {
  if (!is_weight_file_extension(path)) {
    fs::path bin = path;
    bin.replace_extension(".bin");
    return Model::load(path, bin);
  }
  return load_weight_model(path).model;
}

ModelFileInfo describe_model_file(const fs::path& path) {
  ModelFileInfo info;
  std::shared_ptr<const Model> model;
  if (is_weight_file_extension(path)) {
    LoadedWeightModel loaded = load_weight_model(path);
    model = loaded.model;
    info.format = loaded.dict.format;
    info.family = loaded.arch.family;
    const weights::Architecture& a = loaded.arch;
    if (a.family == "ESRGAN")
      info.details = std::to_string(a.blocks) + " RRDB blocks, " + std::to_string(a.features) +
                     " features, growth " + std::to_string(a.growth) + ", " + a.key_style +
                     " keys";
    else
      info.details = std::to_string(a.blocks + 2) + " convolutions, " +
                     std::to_string(a.features) + " features, " + a.activation;
    if (!loaded.dict.wrapper.empty()) info.details += ", weights under '" + loaded.dict.wrapper + "'";
    info.parameters = loaded.dict.parameter_count();
    std::map<std::string, int64_t> by_type;
    for (const auto& [key, t] : loaded.dict.tensors) by_type[std::string(weights::dtype_name(t.stored))] += t.numel();
    if (by_type.size() == 1) {
      info.weight_precision = by_type.begin()->first;
    } else {
      info.weight_precision = "mixed:";
      for (const auto& [type, n] : by_type) info.weight_precision += " " + type;
    }
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
