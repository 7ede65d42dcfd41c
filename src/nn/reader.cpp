// Reads ncnn's .param text and .bin weights (the format of ncnn's Net::load_param and
// ModelBinFromDataReader::load) into a Graph.
#include "nn/reader.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <unordered_map>

#include "upframe/error.hpp"

namespace upframe::nn {

namespace {

constexpr int kParamMagic = 7767517;
constexpr int kMaxParamId = 32;  // ncnn's NCNN_MAX_PARAM_COUNT
constexpr uint32_t kTagFp16 = 0x01306B47;
constexpr uint32_t kTagInt8 = 0x000D4B38;
constexpr uint32_t kTagFp32Scaled = 0x0002C056;

// Converting a double outside a type's range is undefined: values are range-checked first
// (fuzzing found ids and values like 2222222220).
bool fits_int(double x) { return x >= -2147483648.0 && x <= 2147483647.0; }
bool fits_float(double x) { return std::fabs(x) <= 3.4028234663852886e38; }

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

bool parse_number(const std::string& text, double* out, bool* is_float) {
  if (text.empty()) return false;
  char* end = nullptr;
  *out = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size()) return false;
  *is_float = text.find_first_of(".eE") != std::string::npos;
  return std::isfinite(*out);
}

ActivationSpec read_activation(const LayerParams& p) {
  ActivationSpec a;
  int type = p.get_int(9, 0);
  std::vector<float> args = p.get_floats(10);
  switch (type) {
    case 0:
      break;
    case 1:
      a.type = Activation::kReLU;
      break;
    case 2:
      a.type = Activation::kLeakyReLU;
      if (args.size() < 1) p.fail(10, "LeakyReLU activation needs its slope");
      a.alpha = args[0];
      break;
    case 3:
      a.type = Activation::kClip;
      if (args.size() < 2) p.fail(10, "Clip activation needs min and max");
      a.alpha = args[0];
      a.beta = args[1];
      break;
    case 4:
      a.type = Activation::kSigmoid;
      break;
    default:
      p.unsupported("activation type " + std::to_string(type) + " (param 9)");
  }
  return a;
}

// Every weight takes at least one byte of the .bin (quantized storage), so a layer may not
// announce more weights than the .bin's bytes not yet claimed: a corrupt count then fails
// here instead of allocating gigabytes before the .bin is read (a fuzzing finding).
void claim_weights(const LayerParams& p, int id, int64_t count, uint64_t* bin_bytes_left) {
  if (uint64_t(count) > *bin_bytes_left)
    p.fail(id, std::to_string(count) + " weights cannot fit in what is left of the .bin (" +
                   std::to_string(*bin_bytes_left) + " bytes)");
  *bin_bytes_left -= uint64_t(count);
}

void read_conv_params(const LayerParams& p, bool deconv, bool depthwise, ConvParams* c,
                      uint64_t* bin_bytes_left) {
  c->num_output = p.get_int(0, 0);
  c->kernel_w = p.get_int(1, 0);
  c->kernel_h = p.get_int(11, c->kernel_w);
  c->dilation_w = p.get_int(2, 1);
  c->dilation_h = p.get_int(12, c->dilation_w);
  c->stride_w = p.get_int(3, 1);
  c->stride_h = p.get_int(13, c->stride_w);
  c->pad_left = p.get_int(4, 0);
  c->pad_right = p.get_int(15, c->pad_left);
  c->pad_top = p.get_int(14, c->pad_left);
  c->pad_bottom = p.get_int(16, c->pad_top);
  c->bias_term = p.get_int(5, 0) != 0;
  int weight_size = p.get_int(6, 0);
  c->groups = depthwise ? p.get_int(7, 1) : 1;
  c->activation = read_activation(p);
  if (c->num_output <= 0) p.fail(0, "num_output must be positive");
  if (c->kernel_w <= 0 || c->kernel_h <= 0) p.fail(1, "kernel size must be positive");
  if (c->stride_w <= 0 || c->stride_h <= 0) p.fail(3, "stride must be positive");
  if (c->dilation_w <= 0 || c->dilation_h <= 0) p.fail(2, "dilation must be positive");
  if (c->groups <= 0 || c->num_output % c->groups != 0)
    p.fail(7, "group count must divide num_output");
  // In 64 bits: the product of three ints can overflow int (a fuzzing finding).
  const int64_t per_input = int64_t(c->num_output) * c->kernel_w * c->kernel_h;
  if (weight_size <= 0 || weight_size % per_input != 0)
    p.fail(6, "weight_data_size " + std::to_string(weight_size) +
                  " is not a multiple of num_output*kernel_w*kernel_h");
  claim_weights(p, 6, weight_size, bin_bytes_left);
  c->weights.resize(weight_size);
  if (p.get_int(8, 0) != 0) p.unsupported("int8 quantized weights (param 8)");
  p.require_absent(19, "dynamic weights");
  if (deconv) {
    c->output_pad_right = p.get_int(18, 0);
    c->output_pad_bottom = p.get_int(19, c->output_pad_right);
    c->output_w = p.get_int(20, 0);
    c->output_h = p.get_int(21, c->output_w);
    if (c->output_w != 0 || c->output_h != 0) p.unsupported("fixed output size (param 20/21)");
    for (int pad : {c->pad_left, c->pad_right, c->pad_top, c->pad_bottom})
      if (pad < 0) p.unsupported("automatic padding on a Deconvolution (param 4)");
  } else {
    if (p.get_float(18, 0.f) != 0.f) p.unsupported("non-zero pad value (param 18)");
    for (int pad : {c->pad_left, c->pad_right, c->pad_top, c->pad_bottom})
      if (pad < 0 && pad != -233 && pad != -234) p.fail(4, "negative padding");
  }
}

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
  // Weights already in memory (a network built from a PyTorch state dict); `name` names them.
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
        (*out)[i] = half_to_float(h);
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
  static float half_to_float(uint16_t h) {
    uint32_t sign = uint32_t(h & 0x8000) << 16;
    uint32_t exponent = (h >> 10) & 0x1f;
    uint32_t mantissa = h & 0x3ff;
    uint32_t bits;
    if (exponent == 0) {
      if (mantissa == 0) {
        bits = sign;
      } else {  // subnormal: normalise
        exponent = 127 - 15 + 1;
        while (!(mantissa & 0x400)) {
          mantissa <<= 1;
          --exponent;
        }
        mantissa &= 0x3ff;
        bits = sign | (exponent << 23) | (mantissa << 13);
      }
    } else if (exponent == 31) {
      bits = sign | 0x7f800000 | (mantissa << 13);
    } else {
      bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }

  std::string path_;
  std::string data_;
  size_t pos_ = 0;
};

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
  std::vector<int> producer_line;
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

    auto need_io = [&](int min_in, int max_in, int n_out) {
      if (bottoms < min_in || bottoms > max_in || (n_out >= 0 && tops != n_out))
        throw fail("layer " + name + " (" + type + "): wrong number of inputs/outputs (" +
                   std::to_string(bottoms) + " in, " + std::to_string(tops) + " out)");
    };

    if (type == "Input") {
      op.type = OpType::kInput;
      need_io(0, 0, 1);
      op.input_channels = p.get_int(2, 0);
    } else if (type == "Split") {
      op.type = OpType::kSplit;
      need_io(1, 1, -1);
    } else if (type == "Convolution" || type == "ConvolutionDepthWise") {
      op.type = OpType::kConvolution;
      need_io(1, 1, 1);
      read_conv_params(p, false, type == "ConvolutionDepthWise", &op.conv, &bin_bytes_left);
    } else if (type == "Deconvolution" || type == "DeconvolutionDepthWise") {
      op.type = OpType::kDeconvolution;
      need_io(1, 1, 1);
      read_conv_params(p, true, type == "DeconvolutionDepthWise", &op.conv, &bin_bytes_left);
    } else if (type == "PReLU") {
      op.type = OpType::kPReLU;
      need_io(1, 1, 1);
      int n = p.get_int(0, 0);
      if (n <= 0) p.fail(0, "num_slope must be positive");
      claim_weights(p, 0, n, &bin_bytes_left);
      op.slopes.resize(n);
    } else if (type == "ReLU") {
      op.type = OpType::kReLU;
      need_io(1, 1, 1);
      op.relu_slope = p.get_float(0, 0.f);
    } else if (type == "Sigmoid") {
      op.type = OpType::kSigmoid;
      need_io(1, 1, 1);
    } else if (type == "PixelShuffle") {
      op.type = OpType::kPixelShuffle;
      need_io(1, 1, 1);
      op.upscale_factor = p.get_int(0, 1);
      op.pixelshuffle_mode = p.get_int(1, 0);
      if (op.upscale_factor <= 0) p.fail(0, "upscale factor must be positive");
      if (op.pixelshuffle_mode != 0 && op.pixelshuffle_mode != 1) p.fail(1, "mode must be 0 or 1");
    } else if (type == "Interp") {
      op.type = OpType::kInterp;
      need_io(1, 1, 1);
      op.interp.resize_type = p.get_int(0, 0);
      op.interp.height_scale = p.get_float(1, 1.f);
      op.interp.width_scale = p.get_float(2, 1.f);
      op.interp.output_height = p.get_int(3, 0);
      op.interp.output_width = p.get_int(4, 0);
      if (op.interp.resize_type < 1 || op.interp.resize_type > 3)
        p.unsupported("resize type " + std::to_string(op.interp.resize_type) + " (param 0)");
      if (p.get_int(5, 0) != 0) p.unsupported("dynamic target size (param 5)");
      if (p.get_int(6, 0) != 0) p.unsupported("align_corner=1 (param 6)");
      if (op.interp.height_scale <= 0 || op.interp.width_scale <= 0)
        p.fail(1, "scale must be positive");
    } else if (type == "BinaryOp") {
      op.type = OpType::kBinaryOp;
      int kind = p.get_int(0, 0);
      if (kind < 0 || kind > 8) p.unsupported("BinaryOp type " + std::to_string(kind));
      op.binary.kind = BinaryKind(kind);
      op.binary.with_scalar = p.get_int(1, 0) != 0;
      op.binary.scalar = p.get_float(2, 0.f);
      need_io(op.binary.with_scalar ? 1 : 2, op.binary.with_scalar ? 1 : 2, 1);
    } else if (type == "Eltwise") {
      op.type = OpType::kEltwise;
      need_io(2, 1 << 20, 1);
      op.eltwise.kind = p.get_int(0, 1);
      op.eltwise.coefficients = p.get_floats(1);
      if (op.eltwise.kind < 0 || op.eltwise.kind > 2)
        p.unsupported("Eltwise type " + std::to_string(op.eltwise.kind));
      if (!op.eltwise.coefficients.empty() && op.eltwise.coefficients.size() != size_t(bottoms))
        p.fail(1, "coefficient count differs from the input count");
    } else if (type == "Concat") {
      op.type = OpType::kConcat;
      need_io(1, 1 << 20, 1);
      op.concat_axis = p.get_int(0, 0);
    } else if (type == "Crop") {
      op.type = OpType::kCrop;
      CropParams& c = op.crop;
      c.woffset = p.get_int(0, 0);
      c.hoffset = p.get_int(1, 0);
      c.coffset = p.get_int(2, 0);
      c.outw = p.get_int(3, 0);
      c.outh = p.get_int(4, 0);
      c.outc = p.get_int(5, 0);
      c.woffset2 = p.get_int(6, 0);
      c.hoffset2 = p.get_int(7, 0);
      c.coffset2 = p.get_int(8, 0);
      c.starts = p.get_ints(9);
      c.ends = p.get_ints(10);
      c.axes = p.get_ints(11);
      if (c.starts.size() != c.ends.size()) p.fail(10, "starts and ends differ in length");
      if (!c.axes.empty() && c.axes.size() != c.starts.size())
        p.fail(11, "axes and starts differ in length");
      bool slice = !c.starts.empty();
      bool by_reference = !slice && c.outw == 0 && c.outh == 0 && c.outc == 0 && bottoms == 2;
      need_io(1, by_reference ? 2 : 1, 1);
    } else if (type == "Padding") {
      op.type = OpType::kPadding;
      need_io(1, 1, 1);
      PaddingParams& pd = op.padding;
      pd.top = p.get_int(0, 0);
      pd.bottom = p.get_int(1, 0);
      pd.left = p.get_int(2, 0);
      pd.right = p.get_int(3, 0);
      pd.type = p.get_int(4, 0);
      pd.value = p.get_float(5, 0.f);
      if (pd.type < 0 || pd.type > 2) p.unsupported("padding type " + std::to_string(pd.type));
      if (p.get_int(6, 0) != 0) p.unsupported("per-channel pad values (param 6)");
      if (p.get_int(7, 0) != 0 || p.get_int(8, 0) != 0) p.unsupported("channel padding");
      if (pd.top < 0 || pd.bottom < 0 || pd.left < 0 || pd.right < 0) p.fail(0, "negative padding");
    } else if (type == "Pooling") {
      op.type = OpType::kPooling;
      need_io(1, 1, 1);
      op.pooling.kind = p.get_int(0, 0);
      op.pooling.global = p.get_int(4, 0) != 0;
      if (op.pooling.kind != 0 && op.pooling.kind != 1)
        p.unsupported("pooling type " + std::to_string(op.pooling.kind));
      if (!op.pooling.global) p.unsupported("windowed pooling (only global pooling, param 4=1)");
    } else if (type == "InnerProduct") {
      op.type = OpType::kInnerProduct;
      need_io(1, 1, 1);
      op.inner.num_output = p.get_int(0, 0);
      op.inner.bias_term = p.get_int(1, 0) != 0;
      int size = p.get_int(2, 0);
      if (op.inner.num_output <= 0) p.fail(0, "num_output must be positive");
      if (size <= 0 || size % op.inner.num_output != 0)
        p.fail(2, "weight_data_size is not a multiple of num_output");
      if (p.get_int(8, 0) != 0) p.unsupported("int8 quantized weights (param 8)");
      claim_weights(p, 2, size, &bin_bytes_left);
      op.inner.weights.resize(size);
      op.inner.activation = read_activation(p);
    } else {
      throw fail("layer " + name + ": unsupported layer type '" + type + "'");
    }
    graph.ops.push_back(std::move(op));
  }
  if (next_line()) throw fail("more layer lines than the header's " + std::to_string(layer_count));
  if (int(graph.blob_names.size()) != blob_count)
    throw Error(file, "the header says " + std::to_string(blob_count) + " blobs, the layers name " +
                          std::to_string(graph.blob_names.size()));

  WeightReader weights = open_weights();
  for (Op& op : graph.ops) {
    switch (op.type) {
      case OpType::kConvolution:
      case OpType::kDeconvolution:
        weights.load_flagged(&op.conv.weights, op.name);
        if (op.conv.bias_term) {
          op.conv.bias.resize(op.conv.num_output);
          weights.load_raw(&op.conv.bias, op.name, "bias");
        }
        break;
      case OpType::kPReLU:
        weights.load_raw(&op.slopes, op.name, "PReLU slopes");
        break;
      case OpType::kInnerProduct:
        weights.load_flagged(&op.inner.weights, op.name);
        if (op.inner.bias_term) {
          op.inner.bias.resize(op.inner.num_output);
          weights.load_raw(&op.inner.bias, op.name, "bias");
        }
        break;
      default:
        break;
    }
  }
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
