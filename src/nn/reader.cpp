// Reads ncnn's .param text and .bin weights (the format of ncnn's Net::load_param and
// ModelBinFromDataReader::load) into a Graph; each layer type's parser is in ncnn_layers.cpp.
#include "nn/reader.hpp"

#include <cmath>
#include <cstdint>
#include <fstream>
#include <functional>
#include <sstream>
#include <unordered_map>

#include "nn/ncnn_format.hpp"
#include "upframe/error.hpp"

namespace upframe::nn {

using ncnn::LayerLine;
using ncnn::LayerLoad;
using ncnn::LayerParams;
using ncnn::ParamValue;
using ncnn::WeightReader;

namespace {

constexpr int kParamMagic = 7767517;
constexpr int kMaxParamId = 32;  // ncnn's NCNN_MAX_PARAM_COUNT

bool parse_number(const std::string& text, double* out, bool* is_float) {
  if (text.empty()) return false;
  char* end = nullptr;
  *out = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size()) return false;
  *is_float = text.find_first_of(".eE") != std::string::npos;
  return std::isfinite(*out);
}

}  // namespace

namespace {

// The .param text from `in` (named `file` in messages); `bin_size` bounds the weights layers may
// announce; `open_weights` reads the weights once the layers are known.
Graph read_ncnn(std::istream& in, const std::string& file, uint64_t bin_size,
                const std::function<WeightReader()>& open_weights) {
  Graph graph;
  graph.param_path = file;
  int line_number = 0;
  std::string line;
  auto next_line = [&]() -> bool {
    while (std::getline(in, line)) {
      ++line_number;
      if (line.find_first_not_of(" \t\r") != std::string::npos) return true;
    }
    return false;
  };
  auto fail = [&](const std::string& what) -> Error {
    return Error(file, "line " + std::to_string(line_number) + ": " + what);
  };

  if (!next_line()) throw Error(file, "empty model description");
  {
    std::istringstream ls(line);
    int magic = 0;
    if (!(ls >> magic) || magic != kParamMagic)
      throw fail("bad magic number (expected 7767517, an ncnn .param file)");
  }
  int layer_count = 0, blob_count = 0;
  if (!next_line()) throw fail("missing the layer and blob counts");
  {
    std::istringstream ls(line);
    if (!(ls >> layer_count >> blob_count) || layer_count <= 0 || blob_count <= 0)
      throw fail("bad layer/blob count line '" + line + "'");
  }

  std::unordered_map<std::string, int> blob_index;
  auto blob_id = [&](const std::string& name) {
    auto [it, inserted] = blob_index.emplace(name, int(graph.blob_names.size()));
    if (inserted) graph.blob_names.push_back(name);
    return it->second;
  };
  std::vector<LayerLoad> loaders;  // per op, in file order (the .bin's order)
  uint64_t bin_bytes_left = bin_size;

  for (int layer = 0; layer < layer_count; ++layer) {
    if (!next_line())
      throw fail("file ends after " + std::to_string(layer) + " layers, the header says " +
                 std::to_string(layer_count));
    std::istringstream ls(line);
    std::string type, name;
    int bottoms = -1, tops = -1;
    if (!(ls >> type >> name >> bottoms >> tops) || bottoms < 0 || tops < 0)
      throw fail("malformed layer line");
    Op op;
    op.name = name;
    op.line = line_number;
    for (int i = 0; i < bottoms; ++i) {
      std::string b;
      if (!(ls >> b)) throw fail("layer " + name + ": missing input blob names");
      auto it = blob_index.find(b);
      if (it == blob_index.end())
        throw fail("layer " + name + ": input blob '" + b +
                   "' is not produced by an earlier layer");
      op.inputs.push_back(it->second);
    }
    for (int i = 0; i < tops; ++i) {
      std::string t;
      if (!(ls >> t)) throw fail("layer " + name + ": missing output blob names");
      if (blob_index.count(t)) throw fail("layer " + name + ": blob '" + t + "' produced twice");
      op.outputs.push_back(blob_id(t));
    }
    LayerParams p(file, line_number, name);
    std::string token;
    while (ls >> token) {
      size_t eq = token.find('=');
      int id = 0;
      bool id_float = false;
      double id_number = 0;
      if (eq == std::string::npos || !parse_number(token.substr(0, eq), &id_number, &id_float) ||
          id_float)
        throw fail("layer " + name + ": malformed parameter '" + token + "'");
      // Before the int conversion and the array-id negation, which could overflow.
      if (id_number >= kMaxParamId || id_number <= -23300 - kMaxParamId)
        throw fail("layer " + name + ": parameter id out of range in '" + token + "'");
      id = int(id_number);
      ParamValue v;
      std::string value = token.substr(eq + 1);
      if (id <= -23300) {
        id = -id - 23300;
        v.is_array = true;
        std::vector<std::string> parts;
        std::stringstream vs(value);
        std::string part;
        while (std::getline(vs, part, ',')) parts.push_back(part);
        double n = 0;
        bool n_float = false;
        if (parts.empty() || !parse_number(parts[0], &n, &n_float) || n_float ||
            n != double(parts.size() - 1))
          throw fail("layer " + name + ": array parameter '" + token +
                     "' does not hold the count it announces");
        for (size_t i = 1; i < parts.size(); ++i) {
          double x = 0;
          bool f = false;
          if (!parse_number(parts[i], &x, &f))
            throw fail("layer " + name + ": bad number in '" + token + "'");
          v.numbers.push_back(x);
          v.is_float.push_back(f);
        }
      } else {
        double x = 0;
        bool f = false;
        if (!parse_number(value, &x, &f))
          throw fail("layer " + name + ": bad number in '" + token + "'");
        v.numbers.push_back(x);
        v.is_float.push_back(f);
      }
      if (id < 0 || id >= kMaxParamId)
        throw fail("layer " + name + ": parameter id out of range in '" + token + "'");
      p.set(id, std::move(v));
    }

    auto parser = ncnn::layer_parsers().find(type);
    if (parser == ncnn::layer_parsers().end())
      throw fail("layer " + name + ": unsupported layer type '" + type + "'");
    const LayerLine layer_line{p, name, type, bottoms, tops, line_number, file, &bin_bytes_left};
    op.type = parser->second.type;
    op.params = parser->second.parse(layer_line);
    loaders.push_back(parser->second.load);
    graph.ops.push_back(std::move(op));
  }
  if (next_line()) throw fail("more layer lines than the header's " + std::to_string(layer_count));
  if (int(graph.blob_names.size()) != blob_count)
    throw Error(file, "the header says " + std::to_string(blob_count) + " blobs, the layers name " +
                          std::to_string(graph.blob_names.size()));

  WeightReader weights = open_weights();
  for (size_t i = 0; i < graph.ops.size(); ++i)
    if (loaders[i]) loaders[i](weights, graph.ops[i]);
  weights.expect_end();
  graph.finalize();
  return graph;
}

}  // namespace

Graph read_ncnn_model(const std::filesystem::path& param_path,
                      const std::filesystem::path& bin_path) {
  const std::string file = param_path.string();
  std::ifstream in(param_path);
  if (!in) throw Error(file, "cannot open the model description (.param)");
  std::error_code bin_size_error;
  uint64_t bin_size = std::filesystem::file_size(bin_path, bin_size_error);
  if (bin_size_error) bin_size = UINT64_MAX;  // WeightReader reports the missing .bin
  return read_ncnn(in, file, bin_size, [&] { return WeightReader(bin_path); });
}

Graph read_ncnn_model_text(const std::string& param_text, std::string bin_data,
                           const std::string& name) {
  std::istringstream in(param_text);
  const uint64_t bin_size = bin_data.size();
  return read_ncnn(in, name, bin_size,
                   [&] { return WeightReader(name, std::move(bin_data)); });
}

}  // namespace upframe::nn
