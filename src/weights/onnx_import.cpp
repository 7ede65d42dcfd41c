// ONNX graph -> ncnn graph, node by node. Weights (Conv, PRelu) and the constants ops take
// (Resize scales, Pad pads, scalar and per-channel operands of Add/Sub/Mul/Div, Clip bounds)
// come from initializers and Constant nodes; everything else is a tensor flowing through the
// graph, of any height and width. Per-channel arithmetic with a constant is a 1x1 depthwise
// convolution (x*c+0 and x*1+c are exact in fp32), so no op beyond the ncnn set is needed.
#include "upframe/weights/onnx_import.hpp"

#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <set>

#include "upframe/weights/float16.hpp"
#include "ncnn_writer.hpp"
#include "upframe/error.hpp"

namespace upframe::weights {

namespace {

constexpr int64_t kMaxConstantElements = int64_t{1} << 28;

struct Constant {
  std::vector<int64_t> dims;
  std::vector<float> values;
  DType stored = DType::kF32;
};

class Importer {
 public:
  Importer(const onnx::ModelProto& model, std::string name)
      : model_(model), graph_(model.graph()), name_(std::move(name)), writer_(name_) {}

  OnnxImport run();

 private:
  [[noreturn]] void fail(const std::string& problem, ExitCode code = ExitCode::kProcessingFailed) const {
    throw Error(name_, "ONNX: " + problem, code);
  }
  [[noreturn]] void unsupported(const onnx::NodeProto& node, const std::string& what) const {
    fail("node '" + node.name() + "' (" + node.op_type() + "): " + what +
             " (docs/MODELS.md lists what is supported)",
         ExitCode::kUsage);
  }

  Constant to_constant(const onnx::TensorProto& t) const;
  // `out.size()` values of `t` as float: from raw_data (little-endian elements of type Raw) or
  // else from the typed field the format keeps that type in, each through `convert`.
  template <typename Raw, typename Field, typename Convert>
  void read_values(const onnx::TensorProto& t, const Field& typed, Convert convert,
                   std::vector<float>& out) const {
    const std::string& raw = t.raw_data();
    const size_t n = out.size();
    if (!raw.empty()) {
      if (raw.size() != n * sizeof(Raw))
        fail("tensor '" + t.name() + "' holds " + std::to_string(raw.size()) +
             " bytes for its shape");
      for (size_t i = 0; i < n; ++i) {
        Raw v;
        std::memcpy(&v, raw.data() + i * sizeof(Raw), sizeof(Raw));
        out[i] = convert(v);
      }
    } else if (static_cast<size_t>(typed.size()) == n) {
      for (size_t i = 0; i < n; ++i) out[i] = convert(static_cast<Raw>(typed.Get(int(i))));
    } else {
      fail("tensor '" + t.name() + "' holds the wrong number of values");
    }
  }
  int64_t model_opset() const {
    for (const auto& o : model_.opset_import())
      if (o.domain().empty() || o.domain() == "ai.onnx") return o.version();
    return 0;
  }
  const Constant* constant(const std::string& value) const {
    auto it = constants_.find(value);
    return it == constants_.end() ? nullptr : &it->second;
  }
  std::string blob(const onnx::NodeProto& node, int input) const {
    if (input >= node.input_size()) unsupported(node, "missing input " + std::to_string(input));
    auto it = blobs_.find(node.input(input));
    if (it == blobs_.end()) {
      if (constant(node.input(input)))
        unsupported(node, "a constant where an image tensor is expected");
      fail("node '" + node.name() + "' reads '" + node.input(input) + "', which nothing produced");
    }
    return it->second;
  }
  const onnx::AttributeProto* attribute(const onnx::NodeProto& node, const std::string& a) const {
    for (const auto& attr : node.attribute())
      if (attr.name() == a) return &attr;
    return nullptr;
  }
  int64_t int_attribute(const onnx::NodeProto& node, const std::string& a, int64_t fallback) const {
    const auto* attr = attribute(node, a);
    return attr ? attr->i() : fallback;
  }
  std::vector<int64_t> ints_attribute(const onnx::NodeProto& node, const std::string& a) const {
    const auto* attr = attribute(node, a);
    return attr ? std::vector<int64_t>(attr->ints().begin(), attr->ints().end())
                : std::vector<int64_t>{};
  }
  std::string string_attribute(const onnx::NodeProto& node, const std::string& a,
                               const std::string& fallback) const {
    const auto* attr = attribute(node, a);
    return attr ? attr->s() : fallback;
  }

  void convolution(const onnx::NodeProto& node);
  void arithmetic(const onnx::NodeProto& node, int kind);
  void resize(const onnx::NodeProto& node);
  void pad(const onnx::NodeProto& node);
  void clip(const onnx::NodeProto& node);
  void translate(const onnx::NodeProto& node);

  const onnx::ModelProto& model_;
  const onnx::GraphProto& graph_;
  std::string name_;
  NcnnWriter writer_;
  std::map<std::string, Constant> constants_;
  std::map<std::string, std::string> blobs_;  // ONNX value name -> ncnn blob
  std::set<std::string> graph_outputs_;
  std::map<std::string, int64_t> weight_elements_;  // by stored type
};

Constant Importer::to_constant(const onnx::TensorProto& t) const {
  Constant c;
  c.dims.assign(t.dims().begin(), t.dims().end());
  int64_t numel = 1;
  for (int64_t d : c.dims) {
    if (d < 0 || (d > 0 && numel > kMaxConstantElements / d))
      fail("tensor '" + t.name() + "' has an impossible shape");
    numel *= d;
  }
  if (t.data_location() == onnx::TensorProto::EXTERNAL)
    fail("tensor '" + t.name() + "' keeps its data in an external file, which is not read");
  c.values.resize(static_cast<size_t>(numel));
  auto as_float = [](auto v) { return static_cast<float>(v); };
  switch (t.data_type()) {
    case onnx::TensorProto::FLOAT:
      read_values<float>(t, t.float_data(), as_float, c.values);
      break;
    case onnx::TensorProto::FLOAT16:  // raw: 2 bytes each; typed: one int32 each
      c.stored = DType::kF16;
      read_values<uint16_t>(t, t.int32_data(), half_to_float, c.values);
      break;
    case onnx::TensorProto::BFLOAT16:
      c.stored = DType::kBF16;
      read_values<uint16_t>(t, t.int32_data(), bf16_to_float, c.values);
      break;
    case onnx::TensorProto::DOUBLE:
      c.stored = DType::kF64;
      read_values<double>(t, t.double_data(), as_float, c.values);
      break;
    case onnx::TensorProto::INT64:
      c.stored = DType::kI64;
      read_values<int64_t>(t, t.int64_data(), as_float, c.values);
      break;
    case onnx::TensorProto::INT32:
      c.stored = DType::kI32;
      read_values<int32_t>(t, t.int32_data(), as_float, c.values);
      break;
    default:
      fail("tensor '" + t.name() + "' has an unsupported element type " +
           std::to_string(t.data_type()));
  }
  return c;
}

void Importer::convolution(const onnx::NodeProto& node) {
  const std::string in = blob(node, 0);
  const Constant* w = node.input_size() > 1 ? constant(node.input(1)) : nullptr;
  const Constant* b = node.input_size() > 2 && !node.input(2).empty() ? constant(node.input(2))
                                                                      : nullptr;
  if (!w || w->dims.size() != 4) unsupported(node, "weights that are not a constant 4-D tensor");
  if (node.input_size() > 2 && !node.input(2).empty() && !b) unsupported(node, "a computed bias");
  const int64_t out = w->dims[0], kh = w->dims[2], kw = w->dims[3];
  if (b && static_cast<int64_t>(b->values.size()) != out) fail("node '" + node.name() + "': bias size");
  const int64_t group = int_attribute(node, "group", 1);
  std::vector<int64_t> strides = ints_attribute(node, "strides");
  std::vector<int64_t> dilations = ints_attribute(node, "dilations");
  std::vector<int64_t> pads = ints_attribute(node, "pads");
  const std::string auto_pad = string_attribute(node, "auto_pad", "NOTSET");
  if (strides.empty()) strides = {1, 1};
  if (dilations.empty()) dilations = {1, 1};
  if (pads.empty()) pads = {0, 0, 0, 0};
  if (strides.size() != 2 || dilations.size() != 2 || pads.size() != 4)
    unsupported(node, "a convolution that is not 2-D");
  std::string params = "0=" + std::to_string(out) + " 1=" + std::to_string(kw) +
                       " 11=" + std::to_string(kh) + " 2=" + std::to_string(dilations[1]) +
                       " 12=" + std::to_string(dilations[0]) + " 3=" + std::to_string(strides[1]) +
                       " 13=" + std::to_string(strides[0]);
  if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    params += auto_pad == "SAME_UPPER" ? " 4=-233" : " 4=-234";
  } else if (auto_pad == "NOTSET" || auto_pad == "VALID") {
    if (auto_pad == "VALID") pads = {0, 0, 0, 0};
    // ONNX: [top, left, bottom, right]
    params += " 4=" + std::to_string(pads[1]) + " 14=" + std::to_string(pads[0]) +
              " 15=" + std::to_string(pads[3]) + " 16=" + std::to_string(pads[2]);
  } else {
    unsupported(node, "auto_pad " + auto_pad);
  }
  params += std::string(" 5=") + (b ? "1" : "0") + " 6=" + std::to_string(w->values.size());
  if (group != 1) params += " 7=" + std::to_string(group);
  writer_.weights_fp32_flagged(w->values);
  if (b) writer_.weights_raw(b->values);
  weight_elements_[std::string(dtype_name(w->stored))] += static_cast<int64_t>(w->values.size());
  if (b) weight_elements_[std::string(dtype_name(b->stored))] += static_cast<int64_t>(b->values.size());
  blobs_[node.output(0)] =
      writer_.layer(group == 1 ? "Convolution" : "ConvolutionDepthWise", {in}, params);
}

// Add (0), Sub (1), Mul (2), Div (3) of two tensors, or of a tensor and a constant scalar or
// per-channel constant.
void Importer::arithmetic(const onnx::NodeProto& node, int kind) {
  if (node.input_size() != 2) unsupported(node, "not two inputs");
  const Constant* a = constant(node.input(0));
  const Constant* b = constant(node.input(1));
  if (a && b) unsupported(node, "arithmetic on two constants");
  if (!a && !b) {
    blobs_[node.output(0)] = writer_.layer("BinaryOp", {blob(node, 0), blob(node, 1)},
                                           "0=" + std::to_string(kind));
    return;
  }
  const bool constant_first = a != nullptr;
  const Constant& c = constant_first ? *a : *b;
  const std::string x = blob(node, constant_first ? 1 : 0);
  if (c.values.size() == 1) {
    // ncnn's rsub (7) and rdiv (8) put the scalar first.
    int k = kind;
    if (constant_first && kind == 1) k = 7;
    if (constant_first && kind == 3) k = 8;
    blobs_[node.output(0)] = writer_.layer(
        "BinaryOp", {x}, "0=" + std::to_string(k) + " 1=1 2=" + NcnnWriter::number(c.values[0]));
    return;
  }
  // Per-channel: shape [1, C, 1, 1] or [C, 1, 1].
  size_t channels = c.values.size();
  const bool per_channel =
      (c.dims.size() == 4 && c.dims[0] == 1 && c.dims[2] == 1 && c.dims[3] == 1) ||
      (c.dims.size() == 3 && c.dims[1] == 1 && c.dims[2] == 1);
  if (!per_channel) unsupported(node, "a constant operand that is neither a scalar nor per-channel");
  std::vector<float> scale(channels, 1.f), bias(channels, 0.f);
  for (size_t i = 0; i < channels; ++i) {
    const float v = c.values[i];
    switch (kind) {
      case 0: bias[i] = v; break;
      case 1: constant_first ? (scale[i] = -1.f, bias[i] = v) : (bias[i] = -v); break;
      case 2: scale[i] = v; break;
      default:
        if (constant_first) unsupported(node, "a constant divided by a tensor");
        scale[i] = 1.f / v;
    }
  }
  writer_.weights_fp32_flagged(scale);
  writer_.weights_raw(bias);
  blobs_[node.output(0)] = writer_.layer(
      "ConvolutionDepthWise", {x},
      "0=" + std::to_string(channels) + " 1=1 5=1 6=" + std::to_string(channels) + " 7=" +
          std::to_string(channels));
}

void Importer::resize(const onnx::NodeProto& node) {
  const std::string x = blob(node, 0);
  const std::string mode = string_attribute(node, "mode", "nearest");
  const Constant* scales = nullptr;
  Constant from_attribute;  // Upsample before opset 9 carries its scales as an attribute
  if (node.op_type() == "Upsample" && attribute(node, "scales")) {
    const auto* attr = attribute(node, "scales");
    from_attribute.values.assign(attr->floats().begin(), attr->floats().end());
    scales = &from_attribute;
  } else {
    // Resize(X, roi, scales[, sizes]) from opset 11; Resize(X, scales) in 10; Upsample(X, scales).
    const int at = node.op_type() == "Resize" && model_opset() >= 11 ? 2 : 1;
    if (node.input_size() > at && !node.input(at).empty()) scales = constant(node.input(at));
    if (node.op_type() == "Resize" && node.input_size() > 3 && !node.input(3).empty())
      unsupported(node, "a resize to fixed sizes (export with scale_factor)");
  }
  if (!scales || scales->values.size() != 4 || scales->values[0] != 1.f || scales->values[1] != 1.f)
    unsupported(node, "scales that are not a constant [1, 1, h, w]");
  int resize_type = 0;
  if (mode == "nearest") {
    resize_type = 1;
    const std::string transform = string_attribute(node, "coordinate_transformation_mode", "half_pixel");
    const std::string rounding = string_attribute(node, "nearest_mode", "round_prefer_floor");
    // ncnn's nearest picks floor(dst / scale): asymmetric + floor, what PyTorch exports; with
    // integer scales half_pixel + round_prefer_floor picks the same pixels.
    if (node.op_type() == "Resize" && !(transform == "asymmetric" && rounding == "floor")) {
      const float sh = scales->values[2], sw = scales->values[3];
      if (sh != std::floor(sh) || sw != std::floor(sw) || transform != "half_pixel")
        unsupported(node, "nearest with " + transform + "/" + rounding);
    }
  } else if (mode == "linear" || mode == "bilinear") {
    resize_type = 2;
    const std::string transform = string_attribute(node, "coordinate_transformation_mode", "half_pixel");
    if (node.op_type() == "Resize" && transform != "half_pixel" && transform != "pytorch_half_pixel")
      unsupported(node, "linear with " + transform);
  } else {
    unsupported(node, "mode " + mode);
  }
  blobs_[node.output(0)] =
      writer_.layer("Interp", {x}, "0=" + std::to_string(resize_type) + " 1=" +
                                       NcnnWriter::number(scales->values[2]) + " 2=" +
                                       NcnnWriter::number(scales->values[3]));
}

void Importer::pad(const onnx::NodeProto& node) {
  const std::string x = blob(node, 0);
  std::vector<int64_t> pads = ints_attribute(node, "pads");
  if (node.input_size() > 1 && !node.input(1).empty()) {
    const Constant* p = constant(node.input(1));
    if (!p) unsupported(node, "computed pads");
    pads.assign(p->values.begin(), p->values.end());
  }
  float value = 0;
  if (node.input_size() > 2 && !node.input(2).empty()) {
    const Constant* v = constant(node.input(2));
    if (!v || v->values.size() != 1) unsupported(node, "a computed pad value");
    value = v->values[0];
  }
  if (pads.size() != 8 || pads[0] || pads[1] || pads[4] || pads[5])
    unsupported(node, "padding other than height and width");
  for (int64_t p : pads)
    if (p < 0) unsupported(node, "negative padding");
  const std::string mode = string_attribute(node, "mode", "constant");
  const int type = mode == "constant" ? 0 : mode == "edge" ? 1 : mode == "reflect" ? 2 : -1;
  if (type < 0) unsupported(node, "mode " + mode);
  blobs_[node.output(0)] = writer_.layer(
      "Padding", {x},
      "0=" + std::to_string(pads[2]) + " 1=" + std::to_string(pads[6]) + " 2=" +
          std::to_string(pads[3]) + " 3=" + std::to_string(pads[7]) + " 4=" +
          std::to_string(type) + " 5=" + NcnnWriter::number(value));
}

void Importer::clip(const onnx::NodeProto& node) {
  float low = -std::numeric_limits<float>::infinity(), high = std::numeric_limits<float>::infinity();
  if (const auto* a = attribute(node, "min")) low = a->f();
  if (const auto* a = attribute(node, "max")) high = a->f();
  for (int i : {1, 2}) {
    if (node.input_size() > i && !node.input(i).empty()) {
      const Constant* c = constant(node.input(i));
      if (!c || c->values.size() != 1) unsupported(node, "computed bounds");
      (i == 1 ? low : high) = c->values[0];
    }
  }
  const std::string x = blob(node, 0);
  if (low == 0 && std::isinf(high)) {
    blobs_[node.output(0)] = writer_.layer("ReLU", {x}, "");
  } else if (low <= 0 && high >= 1 && graph_outputs_.count(node.output(0))) {
    // The final clamp to [0, 1]: the colour conversion after the network clamps the same way.
    blobs_[node.output(0)] = x;
  } else {
    unsupported(node, "bounds other than [0, inf) or a final [0, 1]");
  }
}

void Importer::translate(const onnx::NodeProto& node) {
  const std::string& op = node.op_type();
  if (!node.domain().empty() && node.domain() != "ai.onnx")
    unsupported(node, "an op of domain " + node.domain());
  if (node.output_size() < 1) fail("node '" + node.name() + "' has no output");
  if (op == "Constant") {
    const auto* value = attribute(node, "value");
    if (!value || !value->has_t()) unsupported(node, "a constant that is not a tensor");
    constants_[node.output(0)] = to_constant(value->t());
  } else if (op == "Identity" || op == "Cast" || op == "Dropout") {
    if (const Constant* c = constant(node.input(0)))
      constants_[node.output(0)] = *c;
    else
      blobs_[node.output(0)] = blob(node, 0);
  } else if (op == "Conv") {
    convolution(node);
  } else if (op == "Relu") {
    blobs_[node.output(0)] = writer_.layer("ReLU", {blob(node, 0)}, "");
  } else if (op == "LeakyRelu") {
    const auto* alpha = attribute(node, "alpha");
    blobs_[node.output(0)] = writer_.layer(
        "ReLU", {blob(node, 0)}, "0=" + NcnnWriter::number(alpha ? alpha->f() : 0.01f));
  } else if (op == "Sigmoid") {
    blobs_[node.output(0)] = writer_.layer("Sigmoid", {blob(node, 0)}, "");
  } else if (op == "PRelu") {
    const Constant* slope = node.input_size() > 1 ? constant(node.input(1)) : nullptr;
    if (!slope) unsupported(node, "slopes that are not a constant");
    writer_.weights_raw(slope->values);
    weight_elements_[std::string(dtype_name(slope->stored))] += static_cast<int64_t>(slope->values.size());
    blobs_[node.output(0)] = writer_.layer("PReLU", {blob(node, 0)},
                                           "0=" + std::to_string(slope->values.size()));
  } else if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") {
    arithmetic(node, op == "Add" ? 0 : op == "Sub" ? 1 : op == "Mul" ? 2 : 3);
  } else if (op == "Concat") {
    const int64_t axis = int_attribute(node, "axis", 1);
    if (axis != 1 && axis != -3) unsupported(node, "concatenation along an axis other than channels");
    std::vector<std::string> inputs;
    for (int i = 0; i < node.input_size(); ++i) inputs.push_back(blob(node, i));
    blobs_[node.output(0)] = writer_.layer("Concat", inputs, "");
  } else if (op == "DepthToSpace") {
    const int64_t block = int_attribute(node, "blocksize", 0);
    if (block < 1) unsupported(node, "no blocksize");
    const std::string mode = string_attribute(node, "mode", "DCR");
    if (mode != "DCR" && mode != "CRD") unsupported(node, "mode " + mode);
    // ncnn PixelShuffle mode 0 is PyTorch's pixel_shuffle (ONNX CRD), mode 1 DCR.
    blobs_[node.output(0)] = writer_.layer(
        "PixelShuffle", {blob(node, 0)},
        "0=" + std::to_string(block) + " 1=" + (mode == "DCR" ? "1" : "0"));
  } else if (op == "Resize" || op == "Upsample") {
    resize(node);
  } else if (op == "Pad") {
    pad(node);
  } else if (op == "Clip") {
    clip(node);
  } else if (op == "GlobalAveragePool" ||
             (op == "ReduceMean" && int_attribute(node, "keepdims", 1) == 1)) {
    if (op == "ReduceMean") {
      std::vector<int64_t> axes = ints_attribute(node, "axes");
      if (axes != std::vector<int64_t>{2, 3} && axes != std::vector<int64_t>{-2, -1})
        unsupported(node, "a mean over axes other than height and width");
    }
    blobs_[node.output(0)] = writer_.layer("Pooling", {blob(node, 0)}, "0=1 4=1");
  } else {
    unsupported(node, "op not supported");
  }
}

OnnxImport Importer::run() {
  OnnxImport out;
  out.opset = model_opset();
  out.producer = model_.producer_name() + " " + model_.producer_version();
  for (const auto& init : graph_.initializer()) constants_[init.name()] = to_constant(init);
  for (const auto& o : graph_.output()) graph_outputs_.insert(o.name());
  int inputs = 0;
  for (const auto& in : graph_.input()) {
    if (constants_.count(in.name())) continue;  // older exports list initializers as inputs
    if (++inputs > 1) fail("more than one image input");
    int channels = 3;
    const auto& type = in.type();
    if (type.has_tensor_type() && type.tensor_type().shape().dim_size() == 4) {
      const auto& d = type.tensor_type().shape().dim(1);
      if (d.has_dim_value()) channels = static_cast<int>(d.dim_value());
    } else if (type.has_tensor_type() && type.tensor_type().shape().dim_size() != 0) {
      fail("the input is not an NCHW image");
    }
    if (channels < 1 || channels > 4) fail("an input of " + std::to_string(channels) + " channels");
    blobs_[in.name()] = writer_.input(channels);
  }
  if (inputs == 0) fail("no image input");
  if (graph_.output_size() != 1) fail("not exactly one output");
  for (const auto& node : graph_.node()) translate(node);
  auto result = blobs_.find(graph_.output(0).name());
  if (result == blobs_.end()) fail("the output is not computed from the input");
  out.network = writer_.finish(result->second);
  for (const auto& [type, n] : weight_elements_) out.parameters += n;
  if (weight_elements_.size() == 1) {
    out.weight_precision = weight_elements_.begin()->first;
  } else {
    out.weight_precision = "mixed:";
    for (const auto& [type, n] : weight_elements_) out.weight_precision += " " + type;
  }
  return out;
}

}  // namespace

OnnxImport import_onnx(std::span<const uint8_t> bytes, const std::string& name) {
  onnx::ModelProto model;
  if (bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max()) ||
      !model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    throw Error(name, "not a readable ONNX model");
  if (!model.has_graph()) throw Error(name, "ONNX: the model has no graph");
  return Importer(model, name).run();
}

}  // namespace upframe::weights
