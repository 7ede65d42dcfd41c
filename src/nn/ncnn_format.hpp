// The ncnn file format's pieces the reader (reader.cpp) and the layer parsers
// (ncnn_layers.cpp) share: one layer line's parameters, the .bin reader and the parser table.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "nn/graph.hpp"
#include "upframe/error.hpp"
#include "upframe/weights/float16.hpp"

namespace upframe::nn::ncnn {

inline constexpr uint32_t kTagFp16 = 0x01306B47;
inline constexpr uint32_t kTagInt8 = 0x000D4B38;
inline constexpr uint32_t kTagFp32Scaled = 0x0002C056;

// Converting a double outside a type's range is undefined: values are range-checked first
// (fuzzing found ids and values like 2222222220).
inline bool fits_int(double x) { return x >= -2147483648.0 && x <= 2147483647.0; }
inline bool fits_float(double x) { return std::fabs(x) <= 3.4028234663852886e38; }

// One `k=v` value: a number or an array of numbers (ncnn keys <= -23300).
struct ParamValue {
  bool is_array = false;
  std::vector<double> numbers;
  std::vector<bool> is_float;
};

class LayerParams {
 public:
  LayerParams(const std::string& file, int line, std::string layer)
      : file_(file), line_(line), layer_(std::move(layer)) {}

  void set(int id, ParamValue v) { values_[id] = std::move(v); }

  int get_int(int id, int fallback) const {
    auto it = values_.find(id);
    if (it == values_.end()) return fallback;
    const ParamValue& v = it->second;
    if (v.is_array || v.numbers.size() != 1) fail(id, "expected an integer, got an array");
    if (v.is_float[0] || v.numbers[0] != std::floor(v.numbers[0]))
      fail(id, "expected an integer, got a float");
    if (!fits_int(v.numbers[0])) fail(id, "integer out of range");
    return int(v.numbers[0]);
  }
  float get_float(int id, float fallback) const {
    auto it = values_.find(id);
    if (it == values_.end()) return fallback;
    const ParamValue& v = it->second;
    if (v.is_array || v.numbers.size() != 1) fail(id, "expected a number, got an array");
    if (!fits_float(v.numbers[0])) fail(id, "number out of range");
    return float(v.numbers[0]);
  }
  std::vector<float> get_floats(int id) const {
    auto it = values_.find(id);
    if (it == values_.end()) return {};
    if (!it->second.is_array) fail(id, "expected an array");
    for (double x : it->second.numbers)
      if (!fits_float(x)) fail(id, "number out of range in the array");
    return {it->second.numbers.begin(), it->second.numbers.end()};
  }
  std::vector<int> get_ints(int id) const {
    auto it = values_.find(id);
    if (it == values_.end()) return {};
    if (!it->second.is_array) fail(id, "expected an array");
    std::vector<int> out;
    for (size_t i = 0; i < it->second.numbers.size(); ++i) {
      if (it->second.is_float[i]) fail(id, "expected integers in the array");
      if (!fits_int(it->second.numbers[i])) fail(id, "integer out of range in the array");
      out.push_back(int(it->second.numbers[i]));
    }
    return out;
  }
  bool has(int id) const { return values_.count(id) > 0; }
  // Parameters the reader does not implement are refused rather than ignored.
  void require_absent(int id, const std::string& meaning) const {
    if (has(id)) unsupported(meaning + " (param " + std::to_string(id) + ")");
  }
  [[noreturn]] void unsupported(const std::string& what) const {
    throw Error(file_,
                "line " + std::to_string(line_) + ": layer " + layer_ + ": unsupported " + what);
  }
  [[noreturn]] void fail(int id, const std::string& what) const {
    throw Error(file_, "line " + std::to_string(line_) + ": layer " + layer_ + ": param " +
                           std::to_string(id) + ": " + what);
  }

 private:
  std::string file_;
  int line_;
  std::string layer_;
  std::map<int, ParamValue> values_;
};

// Reads the .bin in layer order, as ncnn's load_model does.
class WeightReader {
 public:
  explicit WeightReader(const std::filesystem::path& path) : path_(path.string()) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path_, "cannot open the model weights");
    std::ostringstream ss;
    ss << in.rdbuf();
    data_ = ss.str();
  }
  // Weights already in memory (a network built from a weight file); `name` names them.
  WeightReader(std::string name, std::string data)
      : path_(std::move(name)), data_(std::move(data)) {}

  // ncnn ModelBin::load(w, 0): a flag word tells the storage (fp16, int8, fp32 raw, table).
  void load_flagged(std::vector<float>* out, const std::string& layer) {
    uint32_t tag = 0;
    read_bytes(&tag, 4, layer, "weight flag word");
    unsigned char f[4];
    std::memcpy(f, &tag, 4);
    size_t count = out->size();
    if (tag == kTagFp16) {
      size_t bytes = (count * 2 + 3) / 4 * 4;
      need(bytes, layer, "fp16 weights");
      const unsigned char* p = reinterpret_cast<const unsigned char*>(data_.data() + pos_);
      for (size_t i = 0; i < count; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        (*out)[i] = weights::half_to_float(h);
      }
      pos_ += bytes;
    } else if (tag == kTagInt8) {
      throw Error(path_, "layer " + layer + ": int8 weights are not supported");
    } else if (tag == kTagFp32Scaled) {
      read_bytes(out->data(), count * 4, layer, "fp32 weights");
    } else if (f[0] + f[1] + f[2] + f[3] != 0) {
      // Quantized: a 256-entry float table, then one index byte per weight (4-aligned).
      float table[256];
      read_bytes(table, sizeof(table), layer, "quantization table");
      size_t bytes = (count + 3) / 4 * 4;
      need(bytes, layer, "quantized weight indices");
      for (size_t i = 0; i < count; ++i)
        (*out)[i] = table[static_cast<unsigned char>(data_[pos_ + i])];
      pos_ += bytes;
    } else {
      read_bytes(out->data(), count * 4, layer, "fp32 weights");
    }
    for (float v : *out)
      if (!std::isfinite(v))
        throw Error(path_, "layer " + layer + ": weights hold a non-finite value");
  }
  // ncnn ModelBin::load(w, 1): raw fp32, no flag word.
  void load_raw(std::vector<float>* out, const std::string& layer, const char* what) {
    read_bytes(out->data(), out->size() * 4, layer, what);
  }
  void expect_end() const {
    if (pos_ != data_.size())
      throw Error(path_, std::to_string(data_.size() - pos_) +
                             " trailing bytes after the last layer's weights (the .bin does not "
                             "match the .param)");
  }

 private:
  void need(size_t bytes, const std::string& layer, const char* what) const {
    if (data_.size() - pos_ < bytes)
      throw Error(path_, "file ends early: layer " + layer + " needs " + std::to_string(bytes) +
                             " bytes of " + what + " at offset " + std::to_string(pos_) +
                             ", the file has " + std::to_string(data_.size()) + " bytes");
  }
  void read_bytes(void* dst, size_t bytes, const std::string& layer, const char* what) {
    need(bytes, layer, what);
    std::memcpy(dst, data_.data() + pos_, bytes);
    pos_ += bytes;
  }

  std::string path_;
  std::string data_;
  size_t pos_ = 0;
};

// One layer line as its parser sees it.
struct LayerLine {
  const LayerParams& p;
  const std::string& name;
  const std::string& type;
  int bottoms, tops;
  int line;
  const std::string& file;
  uint64_t* bin_bytes_left;  // weights claimed so far are subtracted (claim_weights)

  // Refuses a layer with other than min_in..max_in inputs or (n_out >= 0) n_out outputs.
  void need_io(int min_in, int max_in, int n_out) const {
    if (bottoms < min_in || bottoms > max_in || (n_out >= 0 && tops != n_out))
      throw Error(file, "line " + std::to_string(line) + ": layer " + name + " (" + type +
                            "): wrong number of inputs/outputs (" + std::to_string(bottoms) +
                            " in, " + std::to_string(tops) + " out)");
  }
};

// A layer type's reader, as ncnn's layer registry: the parameters of its .param line (checked,
// weights sized and claimed from the .bin), its output shape and, where it has weights, their
// loading in .bin order (ncnn's load_param, load_model and shape inference).
using LayerParse = OpParams (*)(const LayerLine&);
using LayerLoad = void (*)(WeightReader&, Op&);
struct LayerParser {
  OpType type;
  LayerParse parse;
  ShapeFunction shape;       // op_shape_function(type) (graph.hpp)
  LayerLoad load = nullptr;  // null: no weights
};

// By ncnn layer type name (ncnn_layers.cpp).
const std::map<std::string, LayerParser>& layer_parsers();

}  // namespace upframe::nn::ncnn
