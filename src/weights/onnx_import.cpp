// ONNX graph -> ncnn graph, node by node. Weights (Conv, PRelu) and the constants ops take
// (Resize scales, Pad pads, scalar and per-channel operands of Add/Sub/Mul/Div, Clip bounds)
// come from initializers and Constant nodes; everything else is a tensor flowing through the
// graph, of any height and width. Per-channel arithmetic with a constant is a 1x1 depthwise
// convolution (x*c+0 and x*1+c are exact in fp32), so no op beyond the ncnn set is needed.
//
// Exports with dynamic height and width compute shapes inside the graph (Shape -> Gather ->
// Mul/Div -> Unsqueeze -> Concat -> Reshape or Resize). Those values are folded at three probe
// input sizes at once: a value that is the same at every probe is a constant, one that is not
// is a function of the input size, and two such values are equal when they agree at every
// probe (the probes are multiples of 192 so that strides and (un)shuffles up to 64 divide
// them, and their heights and widths are not proportional). Reshape/Transpose chains
// are then matched against pixel shuffle and unshuffle; any other layout change is refused.
#include "upframe/weights/onnx_import.hpp"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <set>

#include "ncnn_writer.hpp"
#include "upframe/error.hpp"
#include "upframe/weights/float16.hpp"

namespace upframe::weights {

namespace {

constexpr int64_t kMaxConstantElements = int64_t{1} << 28;

struct Constant {
  std::vector<int64_t> dims;
  std::vector<float> values;
  DType stored = DType::kF32;
};

constexpr int kProbes = 3;
constexpr std::array<int64_t, kProbes> kProbeHeights = {192, 384, 960};
constexpr std::array<int64_t, kProbes> kProbeWidths = {576, 1344, 768};
// Folded values this long at most (shape vectors, slice bounds): anything longer is weights.
constexpr size_t kMaxFoldedElements = 64;

using Dims = std::vector<int64_t>;
using ProbeDims = std::array<Dims, kProbes>;  // a tensor's ONNX dims at each probe input size

// A small tensor computed from shapes: its values at each probe (the dims are the same at all).
struct Folded {
  Dims dims;
  std::array<std::vector<double>, kProbes> values;
  bool integer = true;
  bool varies() const { return values[1] != values[0] || values[2] != values[0]; }
};

// An image's layout change in flight (Reshape, Transpose, Squeeze, Unsqueeze, Flatten): the
// dims before its transpose, the transpose, the dims now. Reshapes compose, so the chain is
// known by these alone; it becomes an ncnn layer when a node reads it as an image.
struct Layout {
  std::string source;  // the ONNX value it rearranges, an image
  ProbeDims before;    // before the transpose (the current dims while there is none)
  std::vector<int64_t> perm;
  ProbeDims after;
  std::string node, op;  // its last node, named if the chain is refused
};

// The product of d[from, to).
int64_t product(const Dims& d, size_t from, size_t to) {
  int64_t n = 1;
  for (auto it = d.begin() + std::ptrdiff_t(from); it < d.begin() + std::ptrdiff_t(to); ++it)
    n *= *it;
  return n;
}
int64_t product(const Dims& d) { return product(d, 0, d.size()); }

class Importer {
 public:
  Importer(const onnx::ModelProto& model, std::string name)
      : model_(model), graph_(model.graph()), name_(std::move(name)), writer_(name_) {}

  OnnxImport run();

 private:
  [[noreturn]] void fail(const std::string& problem,
                         ExitCode code = ExitCode::kProcessingFailed) const {
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
  bool has_input(const onnx::NodeProto& node, int input) const {
    return node.input_size() > input && !node.input(input).empty();
  }
  // The ncnn blob of an image (or pooled vector) input; a pending layout change is matched now.
  std::string blob(const onnx::NodeProto& node, int input) {
    if (input >= node.input_size()) unsupported(node, "missing input " + std::to_string(input));
    if (!blobs_.count(node.input(input)) && layouts_.count(node.input(input)))
      resolve_layout(node.input(input));
    auto it = blobs_.find(node.input(input));
    if (it == blobs_.end()) {
      if (constant(node.input(input)) || folded_.count(node.input(input)))
        unsupported(node, "a constant where an image tensor is expected");
      fail("node '" + node.name() + "' reads '" + node.input(input) + "', which nothing produced");
    }
    return it->second;
  }
  bool is_tensor(const std::string& value) const {
    return blobs_.count(value) || layouts_.count(value);
  }
  bool is_folded(const std::string& value) const {
    return folded_.count(value) ||
           (constants_.count(value) && constants_.at(value).values.size() <= kMaxFoldedElements);
  }
  // ONNX dims of an image, pooled vector or layout in flight, at each probe.
  const ProbeDims& dims_of(const std::string& value) const {
    auto layout = layouts_.find(value);
    if (layout != layouts_.end()) return layout->second.after;
    return shapes_.at(value);
  }
  // The output of `node` is the ncnn blob `blob`, of `dims`; `vector`: a pooled [C] blob.
  void produce(const onnx::NodeProto& node, const std::string& ncnn_blob, const ProbeDims& dims,
               bool vector = false) {
    blobs_[node.output(0)] = ncnn_blob;
    shapes_[node.output(0)] = dims;
    if (vector) vectors_.insert(node.output(0));
  }
  // Same dims and kind as input `input`.
  void produce_like(const onnx::NodeProto& node, const std::string& ncnn_blob, int input = 0) {
    const std::string& in = node.input(input);
    produce(node, ncnn_blob, dims_of(in), vectors_.count(in) > 0);
  }
  // Initializer elements the network uses, by stored type (for model-info).
  void count_weights(const Constant* c) {
    if (c) weight_elements_[std::string(dtype_name(c->stored))] += int64_t(c->values.size());
  }
  // A layer's weights (as ncnn orders them) and bias into the .bin, counted as w's and b's.
  void write_weights(const std::vector<float>& weights, const Constant* w, const Constant* b) {
    writer_.weights_fp32_flagged(weights);
    if (b) writer_.weights_raw(b->values);
    count_weights(w);
    count_weights(b);
  }
  struct ConvAttributes {
    std::vector<int64_t> strides, dilations, pads;  // pads: [top, left, bottom, right]
    std::string auto_pad;
  };
  // Conv's and ConvTranspose's shared attributes with their defaults, checked 2-D.
  ConvAttributes conv_attributes(const onnx::NodeProto& node) const {
    ConvAttributes a{ints_attribute(node, "strides"), ints_attribute(node, "dilations"),
                     ints_attribute(node, "pads"), string_attribute(node, "auto_pad", "NOTSET")};
    if (a.strides.empty()) a.strides = {1, 1};
    if (a.dilations.empty()) a.dilations = {1, 1};
    if (a.pads.empty() || a.auto_pad == "VALID") a.pads = {0, 0, 0, 0};
    if (a.strides.size() != 2 || a.dilations.size() != 2 || a.pads.size() != 4)
      unsupported(node, "a convolution that is not 2-D");
    for (int64_t v : a.strides)
      if (v < 1) unsupported(node, "a stride below 1");
    for (int64_t v : a.dilations)
      if (v < 1) unsupported(node, "a dilation below 1");
    return a;
  }
  Folded folded(const onnx::NodeProto& node, int input) const;
  // A folded input that must be the same at every probe, as integers.
  std::vector<int64_t> fixed_ints(const onnx::NodeProto& node, int input,
                                  const std::string& what) const;
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
  void deconvolution(const onnx::NodeProto& node);
  void inner_product(const onnx::NodeProto& node, const std::string& in, const Constant& w,
                     const Constant* b, bool transposed, float alpha, float beta);
  void arithmetic(const onnx::NodeProto& node, int kind);
  bool foldable(const onnx::NodeProto& node) const;
  void fold(const onnx::NodeProto& node);
  void layout(const onnx::NodeProto& node);
  void resolve_layout(const std::string& value);
  void slice(const onnx::NodeProto& node);
  void space_to_depth(const onnx::NodeProto& node);
  void split(const onnx::NodeProto& node);
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
  std::map<std::string, ProbeDims> shapes_;         // of every value in blobs_
  std::set<std::string> vectors_;                   // values whose ncnn blob is a pooled [C]
  std::map<std::string, Folded> folded_;            // shape values that vary with the input size
  std::map<std::string, Layout> layouts_;
  std::string fixed_size_hint_;  // added to shape refusals when the input's size is fixed
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

Folded Importer::folded(const onnx::NodeProto& node, int input) const {
  if (!has_input(node, input)) unsupported(node, "missing input " + std::to_string(input));
  const std::string& name = node.input(input);
  auto it = folded_.find(name);
  if (it != folded_.end()) return it->second;
  const Constant* c = constant(name);
  if (!c) unsupported(node, "input '" + name + "' is neither a constant nor computed from shapes");
  if (c->values.size() > kMaxFoldedElements)
    unsupported(node, "a shape value of " + std::to_string(c->values.size()) + " elements");
  Folded f;
  f.dims = c->dims;
  f.integer = c->stored == DType::kI64 || c->stored == DType::kI32;
  for (auto& v : f.values) v.assign(c->values.begin(), c->values.end());
  return f;
}

std::vector<int64_t> Importer::fixed_ints(const onnx::NodeProto& node, int input,
                                          const std::string& what) const {
  const Folded f = folded(node, input);
  if (f.varies()) unsupported(node, what + " that depend on the input size");
  std::vector<int64_t> out;
  for (double v : f.values[0]) {
    // INT64_MAX ("to the end") arrives as 9.2e18, beyond what a double converts back exactly.
    if (v >= 9.2e18)
      out.push_back(std::numeric_limits<int64_t>::max());
    else if (v <= -9.2e18)
      out.push_back(std::numeric_limits<int64_t>::min());
    else
      out.push_back(std::llround(v));
  }
  return out;
}

namespace {

// An axis attribute or input value in [0, rank), or -1 when out of range.
int64_t normalised_axis(int64_t axis, size_t rank) {
  if (axis < 0) axis += int64_t(rank);
  return axis >= 0 && axis < int64_t(rank) ? axis : -1;
}

// ONNX Slice bounds of one axis of size `dim`: [start, end) after the negative-index and
// clamping rules (steps of 1).
std::pair<int64_t, int64_t> slice_bounds(double start, double end, int64_t dim) {
  auto clamp = [dim](double v) {
    if (v < 0) v += double(dim);
    return int64_t(std::clamp(v, 0.0, double(dim)));
  };
  const int64_t s = clamp(start), e = clamp(end);
  return {s, std::max(s, e)};
}

}  // namespace

bool Importer::foldable(const onnx::NodeProto& node) const {
  static const std::set<std::string> ops = {"Shape", "Gather", "Unsqueeze", "Squeeze",  "Concat",
                                            "Add",   "Sub",    "Mul",       "Div",      "Cast",
                                            "Floor", "Ceil",   "Slice",     "Identity", "Reshape"};
  if (!ops.count(node.op_type()) || node.input_size() < 1) return false;
  if (node.op_type() == "Shape") return is_tensor(node.input(0));
  for (int i = 0; i < node.input_size(); ++i)
    if (!node.input(i).empty() && !is_folded(node.input(i))) return false;
  return true;
}

// Shape arithmetic, at every probe at once.
void Importer::fold(const onnx::NodeProto& node) {
  const std::string& op = node.op_type();
  Folded out;
  auto each = [&](auto&& f) {
    for (int p = 0; p < kProbes; ++p) f(p);
  };
  auto axes_of = [&](int input) {
    return has_input(node, input) ? fixed_ints(node, input, "axes") : ints_attribute(node, "axes");
  };
  if (op == "Shape") {
    const ProbeDims& d = dims_of(node.input(0));
    const int64_t rank = int64_t(d[0].size());
    int64_t start = int_attribute(node, "start", 0), end = int_attribute(node, "end", rank);
    if (start < 0) start += rank;
    if (end < 0) end += rank;
    start = std::clamp<int64_t>(start, 0, rank);
    end = std::clamp<int64_t>(end, start, rank);
    out.dims = {end - start};
    each([&](int p) { out.values[p].assign(d[p].begin() + start, d[p].begin() + end); });
  } else {
    const bool binary = op == "Add" || op == "Sub" || op == "Mul" || op == "Div";
    if ((binary || op == "Gather" || op == "Reshape") && node.input_size() != 2)
      unsupported(node, "not two inputs");
    std::vector<Folded> in(node.input_size());
    for (int i = 0; i < node.input_size(); ++i)
      if (has_input(node, i)) in[i] = folded(node, i);
    const Folded& x = in[0];
    out = x;
    if (op == "Gather") {
      if (x.dims.size() != 1 || normalised_axis(int_attribute(node, "axis", 0), 1) != 0)
        unsupported(node, "a gather from a shape value that is not a vector");
      const std::vector<int64_t> indices = fixed_ints(node, 1, "indices");
      out.dims = in[1].dims;
      each([&](int p) {
        out.values[p].clear();
        for (int64_t i : indices) {
          const int64_t at = normalised_axis(i, x.values[p].size());
          if (at < 0) unsupported(node, "an index outside the shape");
          out.values[p].push_back(x.values[p][at]);
        }
      });
    } else if (op == "Unsqueeze") {
      std::vector<int64_t> axes = axes_of(1);
      const size_t rank = x.dims.size() + axes.size();
      for (int64_t& a : axes)
        if ((a = normalised_axis(a, rank)) < 0) unsupported(node, "an axis out of range");
      std::sort(axes.begin(), axes.end());
      for (int64_t a : axes) out.dims.insert(out.dims.begin() + a, 1);
    } else if (op == "Squeeze") {
      std::vector<int64_t> axes = axes_of(1);
      Dims dims;
      for (size_t i = 0; i < x.dims.size(); ++i) {
        bool drop = axes.empty() && x.dims[i] == 1;
        for (int64_t a : axes) drop = drop || normalised_axis(a, x.dims.size()) == int64_t(i);
        if (!drop) dims.push_back(x.dims[i]);
      }
      out.dims = dims;
    } else if (op == "Concat") {
      out.dims = {0};
      each([&](int p) { out.values[p].clear(); });
      for (const Folded& f : in) {
        if (f.dims.size() > 1)
          unsupported(node, "a concatenation of shape values that are not vectors");
        out.dims[0] += int64_t(f.values[0].size());
        out.integer = out.integer && f.integer;
        each([&](int p) {
          out.values[p].insert(out.values[p].end(), f.values[p].begin(), f.values[p].end());
        });
      }
    } else if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") {
      const Folded& y = in[1];
      const bool x_wide = x.values[0].size() >= y.values[0].size();
      const Folded& wide = x_wide ? x : y;
      const Folded& narrow = x_wide ? y : x;
      if (narrow.values[0].size() != 1 && narrow.values[0].size() != wide.values[0].size())
        unsupported(node, "shape values that do not broadcast");
      out.dims = wide.dims;
      out.integer = x.integer && y.integer;
      each([&](int p) {
        out.values[p].resize(wide.values[p].size());
        for (size_t i = 0; i < out.values[p].size(); ++i) {
          const double a = x.values[p][x.values[p].size() == 1 ? 0 : i];
          const double b = y.values[p][y.values[p].size() == 1 ? 0 : i];
          double v = op == "Add" ? a + b : op == "Sub" ? a - b : op == "Mul" ? a * b : 0;
          if (op == "Div") {
            if (b == 0) unsupported(node, "a division by zero");
            v = out.integer ? std::trunc(a / b) : a / b;
          }
          out.values[p][i] = v;
        }
      });
    } else if (op == "Cast") {
      const int64_t to = int_attribute(node, "to", onnx::TensorProto::FLOAT);
      out.integer = to == onnx::TensorProto::INT64 || to == onnx::TensorProto::INT32 ||
                    to == onnx::TensorProto::BOOL;
      if (out.integer)
        each([&](int p) {
          for (double& v : out.values[p])
            v = to == onnx::TensorProto::BOOL ? v != 0 : std::trunc(v);
        });
    } else if (op == "Floor" || op == "Ceil") {
      each([&](int p) {
        for (double& v : out.values[p]) v = op == "Floor" ? std::floor(v) : std::ceil(v);
      });
    } else if (op == "Slice") {
      if (x.dims.size() != 1) unsupported(node, "a slice of a shape value that is not a vector");
      const bool inputs = model_opset() >= 10;
      const std::vector<int64_t> starts =
          inputs ? fixed_ints(node, 1, "starts") : ints_attribute(node, "starts");
      const std::vector<int64_t> ends =
          inputs ? fixed_ints(node, 2, "ends") : ints_attribute(node, "ends");
      if (starts.size() != 1 || ends.size() != 1 ||
          (inputs && has_input(node, 4) && fixed_ints(node, 4, "steps") != std::vector<int64_t>{1}))
        unsupported(node, "a slice of a shape value other than one range with step 1");
      const auto bounds = slice_bounds(double(starts[0]), double(ends[0]), x.dims[0]);
      const int64_t s = bounds.first, e = bounds.second;  // captured below (clang 14)
      out.dims = {e - s};
      each([&](int p) { out.values[p].assign(x.values[p].begin() + s, x.values[p].begin() + e); });
    } else if (op == "Reshape") {
      const std::vector<int64_t> shape = fixed_ints(node, 1, "a shape");
      out.dims.clear();
      for (int64_t d : shape) out.dims.push_back(d == -1 ? int64_t(x.values[0].size()) : d);
      if (product(out.dims) != int64_t(x.values[0].size()))
        unsupported(node, "a reshape of a shape value that does not fit it");
    }
  }
  if (out.varies()) {
    folded_[node.output(0)] = out;
  } else {
    Constant c;
    c.dims = out.dims;
    c.values.assign(out.values[0].begin(), out.values[0].end());
    c.stored = out.integer ? DType::kI64 : DType::kF32;
    constants_[node.output(0)] = c;
  }
}

// Reshape, Flatten, Squeeze, Unsqueeze, Transpose of an image (or pooled vector).
void Importer::layout(const onnx::NodeProto& node) {
  const std::string& op = node.op_type();
  const std::string& in = node.input(0);
  const ProbeDims d = dims_of(in);
  ProbeDims next;
  std::vector<int64_t> perm;
  if (op == "Transpose") {
    perm = ints_attribute(node, "perm");
    if (perm.empty())
      for (int64_t i = int64_t(d[0].size()) - 1; i >= 0; --i) perm.push_back(i);
    std::vector<int64_t> sorted = perm;
    std::sort(sorted.begin(), sorted.end());
    for (size_t i = 0; i < sorted.size(); ++i)
      if (sorted[i] != int64_t(i) || sorted.size() != d[0].size())
        unsupported(node, "a permutation that does not fit its input");
  }
  std::vector<int64_t> axes;
  if (op == "Squeeze" || op == "Unsqueeze")
    axes = has_input(node, 1) ? fixed_ints(node, 1, "axes") : ints_attribute(node, "axes");
  const Folded shape = op == "Reshape" ? folded(node, 1) : Folded{};
  for (int p = 0; p < kProbes; ++p) {
    const Dims& from = d[p];
    Dims& to = next[p];
    if (op == "Reshape") {
      const bool allow_zero = int_attribute(node, "allowzero", 0) != 0;
      int64_t infer = -1;
      for (size_t i = 0; i < shape.values[p].size(); ++i) {
        int64_t v = std::llround(shape.values[p][i]);
        if (v == 0 && !allow_zero) {
          if (i >= from.size()) unsupported(node, "a 0 in the shape beyond the input's rank");
          v = from[i];
        }
        if (v == -1) {
          if (infer >= 0) unsupported(node, "two -1 in the shape");
          infer = int64_t(i);
          v = 1;
        } else if (v <= 0) {
          unsupported(node, "a shape with a size of " + std::to_string(v));
        }
        to.push_back(v);
      }
      if (infer >= 0) to[infer] = product(from) / product(to);
      if (product(to) != product(from))
        unsupported(node, "a reshape whose sizes do not fit its input" + fixed_size_hint_);
    } else if (op == "Flatten") {
      const int64_t axis = normalised_axis(int_attribute(node, "axis", 1), from.size() + 1);
      if (axis < 0) unsupported(node, "an axis out of range");
      to = {product(from, 0, size_t(axis)), product(from, size_t(axis), from.size())};
    } else if (op == "Unsqueeze") {
      to = from;
      std::vector<int64_t> sorted;
      for (int64_t a : axes) sorted.push_back(normalised_axis(a, from.size() + axes.size()));
      std::sort(sorted.begin(), sorted.end());
      for (int64_t a : sorted) {
        if (a < 0) unsupported(node, "an axis out of range");
        to.insert(to.begin() + a, 1);
      }
    } else if (op == "Squeeze") {
      for (size_t i = 0; i < from.size(); ++i) {
        bool drop = axes.empty() && from[i] == 1;
        for (int64_t a : axes) drop = drop || normalised_axis(a, from.size()) == int64_t(i);
        if (drop && from[i] != 1) unsupported(node, "a squeeze of an axis that is not 1");
        if (!drop) to.push_back(from[i]);
      }
    } else {
      for (int64_t a : perm) to.push_back(from[size_t(a)]);
    }
  }
  if (vectors_.count(in)) {
    // A pooled vector keeps its ncnn blob while only its axes of size 1 come and go.
    auto sizes = [](const Dims& dims) {
      Dims kept;
      for (int64_t v : dims)
        if (v != 1) kept.push_back(v);
      return kept;
    };
    bool in_order = true;
    for (size_t i = 0, last = 0; i < perm.size(); ++i)
      if (d[0][size_t(perm[i])] != 1) {
        in_order = in_order && size_t(perm[i]) >= last;
        last = size_t(perm[i]);
      }
    if (sizes(next[0]) != sizes(d[0]) || !in_order)
      unsupported(node, "a reshape of a pooled vector other than adding or removing axes of 1");
    produce(node, blobs_.at(in), next, true);
    return;
  }
  Layout l;
  auto pending = layouts_.find(in);
  if (pending != layouts_.end()) {
    l = pending->second;
  } else {
    l.source = in;
    l.before = l.after = d;
  }
  if (op == "Transpose") {
    if (!l.perm.empty()) unsupported(node, "a second transpose in one layout change");
    l.before = l.after;
    l.perm = perm;
  } else if (l.perm.empty()) {
    l.before = next;
  }
  l.after = next;
  l.node = node.name();
  l.op = op;
  layouts_[node.output(0)] = l;
}

// A layout change read as an image: no change at all, or a pixel shuffle (PyTorch's order or
// DepthToSpace's DCR), or a pixel unshuffle (PyTorch's order or SpaceToDepth's).
void Importer::resolve_layout(const std::string& value) {
  const Layout l = layouts_.at(value);
  const ProbeDims& s = shapes_.at(l.source);
  const std::string in = blobs_.at(l.source);
  auto refuse = [&](const std::string& why) {
    fail("node '" + l.node + "' (" + l.op + "): " + why +
             " (docs/MODELS.md lists what is supported)",
         ExitCode::kUsage);
  };
  auto all = [](auto&& pred) {
    for (int p = 0; p < kProbes; ++p)
      if (!pred(p)) return false;
    return true;
  };
  auto done = [&](const std::string& ncnn_blob) {
    blobs_[value] = ncnn_blob;
    shapes_[value] = l.after;
    layouts_.erase(value);
  };
  if (l.after[0].size() != 4)
    refuse("a tensor of " + std::to_string(l.after[0].size()) + " dimensions read as an image");
  bool identity = true;
  for (size_t i = 0; i < l.perm.size(); ++i) identity = identity && l.perm[i] == int64_t(i);
  if (identity && all([&](int p) { return l.after[p] == s[p]; })) return done(in);
  const std::vector<int64_t> pytorch_shuffle = {0, 1, 4, 2, 5, 3}, dcr_shuffle = {0, 3, 4, 1, 5, 2};
  const std::vector<int64_t> pytorch_unshuffle = {0, 1, 3, 5, 2, 4},
                             s2d_unshuffle = {0, 3, 5, 1, 2, 4};
  if (l.before[0].size() == 6) {
    const bool dcr = l.perm == dcr_shuffle;
    if (l.perm == pytorch_shuffle || dcr) {
      const int64_t r = l.before[0][dcr ? 1 : 2];
      const bool fits = r > 1 && all([&](int p) {
                          const Dims& x = s[p];
                          const int64_t c = x[1] / (r * r);
                          const Dims before =
                              dcr ? Dims{1, r, r, c, x[2], x[3]} : Dims{1, c, r, r, x[2], x[3]};
                          return x[1] % (r * r) == 0 && l.before[p] == before &&
                                 l.after[p] == Dims{1, c, x[2] * r, x[3] * r};
                        });
      if (fits)
        return done(writer_.layer("PixelShuffle", {in},
                                  "0=" + std::to_string(r) + " 1=" + (dcr ? "1" : "0")));
    }
    const bool s2d = l.perm == s2d_unshuffle;
    if (l.perm == pytorch_unshuffle || s2d) {
      const int64_t r = l.before[0][3];
      const bool fits = r > 1 && all([&](int p) {
                          const Dims& x = s[p];
                          return x[2] % r == 0 && x[3] % r == 0 &&
                                 l.before[p] == Dims{1, x[1], x[2] / r, r, x[3] / r, r} &&
                                 l.after[p] == Dims{1, x[1] * r * r, x[2] / r, x[3] / r};
                        });
      if (fits) return done(writer_.pixel_unshuffle(in, int(s[0][1]), int(r), s2d));
    }
  }
  refuse("a reshape and transpose that is not a pixel shuffle or unshuffle");
}

void Importer::slice(const onnx::NodeProto& node) {
  if (vectors_.count(node.input(0))) unsupported(node, "a slice of a pooled vector");
  const std::string x = blob(node, 0);
  const ProbeDims& d = dims_of(node.input(0));
  const bool inputs = model_opset() >= 10;
  Folded starts, ends;
  std::vector<int64_t> axes;
  if (inputs) {
    starts = folded(node, 1);
    ends = folded(node, 2);
    if (has_input(node, 3)) axes = fixed_ints(node, 3, "axes");
    if (has_input(node, 4))
      for (int64_t step : fixed_ints(node, 4, "steps"))
        if (step != 1) unsupported(node, "a step other than 1");
  } else {
    for (const char* a : {"starts", "ends"}) {
      Folded& f = std::string(a) == "starts" ? starts : ends;
      const std::vector<int64_t> v = ints_attribute(node, a);
      f.dims = {int64_t(v.size())};
      for (auto& values : f.values) values.assign(v.begin(), v.end());
    }
    axes = ints_attribute(node, "axes");
  }
  const size_t n = starts.values[0].size();
  if (ends.values[0].size() != n) unsupported(node, "starts and ends of different lengths");
  if (axes.empty())
    for (size_t i = 0; i < n; ++i) axes.push_back(int64_t(i));
  if (axes.size() != n) unsupported(node, "axes and starts of different lengths");
  ProbeDims out = d;
  std::string c_starts, c_ends, c_axes;
  int sliced = 0;
  for (size_t k = 0; k < n; ++k) {
    const int64_t axis = normalised_axis(axes[k], 4);
    if (axis < 0) unsupported(node, "an axis out of range");
    // The cut at each end must be the same at every input size: a fixed offset from each edge.
    int64_t lead = -1, trail = -1;
    for (int p = 0; p < kProbes; ++p) {
      const int64_t dim = d[p][size_t(axis)];
      const auto [s, e] = slice_bounds(starts.values[p][k], ends.values[p][k], dim);
      if ((p > 0 && (s != lead || dim - e != trail)) || e <= s)
        unsupported(node, "a slice that is not a fixed distance from the edges at every size");
      lead = s;
      trail = dim - e;
      out[p][size_t(axis)] = e - s;
    }
    if (lead == 0 && trail == 0) continue;
    if (axis == 0) unsupported(node, "a slice of the batch");
    const char* sep = sliced++ ? "," : "";
    c_starts += sep + std::to_string(lead);
    c_ends += sep + std::to_string(trail == 0 ? -233 : -trail);  // -233: to the end
    c_axes += sep + std::to_string(axis - 1);                    // ncnn's blob is c, h, w
  }
  if (sliced == 0) return produce(node, x, out);
  const std::string count = std::to_string(sliced) + ",";
  produce(node,
          writer_.layer("Crop", {x},
                        "-23309=" + count + c_starts + " -23310=" + count + c_ends +
                            " -23311=" + count + c_axes),
          out);
}

// Split over channels (torch.split, torch.chunk): one channel crop per output.
void Importer::split(const onnx::NodeProto& node) {
  if (vectors_.count(node.input(0))) unsupported(node, "a split of a pooled vector");
  if (normalised_axis(int_attribute(node, "axis", 0), 4) != 1)
    unsupported(node, "a split along an axis other than channels");
  const std::string x = blob(node, 0);
  const ProbeDims& d = dims_of(node.input(0));
  const int64_t channels = d[0][1];
  // Sizes: an input from opset 13, an attribute before; else equal parts (num_outputs in 18).
  std::vector<int64_t> sizes =
      has_input(node, 1) ? fixed_ints(node, 1, "sizes") : ints_attribute(node, "split");
  if (sizes.empty()) {
    const int64_t parts = int_attribute(node, "num_outputs", node.output_size());
    const int64_t each = parts > 0 ? (channels + parts - 1) / parts : 0;
    for (int64_t left = channels; left > 0 && each > 0; left -= each)
      sizes.push_back(std::min(each, left));
  }
  int64_t total = 0;
  for (int64_t v : sizes) total += v > 0 ? v : channels + 1;  // a size below 1 never adds up
  if (int64_t(sizes.size()) != node.output_size() || total != channels)
    unsupported(node, "sizes that do not add up to its " + std::to_string(channels) +
                          " channels over its outputs");
  int64_t start = 0;
  for (int i = 0; i < node.output_size(); ++i) {
    const int64_t end = start + sizes[size_t(i)];
    ProbeDims out = d;
    for (Dims& o : out) o[1] = sizes[size_t(i)];
    blobs_[node.output(i)] =
        writer_.layer("Crop", {x},
                      "-23309=1," + std::to_string(start) + " -23310=1," +
                          std::to_string(end == channels ? -233 : end) + " -23311=1,0");
    shapes_[node.output(i)] = out;
    start = end;
  }
}

void Importer::inner_product(const onnx::NodeProto& node, const std::string& in, const Constant& w,
                             const Constant* b, bool transposed, float alpha, float beta) {
  const int64_t out = w.dims.size() < 2 ? 0 : transposed ? w.dims[1] : w.dims[0];
  if (out < 1) unsupported(node, "weights with no outputs");
  const int64_t inputs = static_cast<int64_t>(w.values.size()) / out;
  const ProbeDims& d = dims_of(node.input(0));
  if (product(d[0]) != inputs)
    unsupported(node, "weights for " + std::to_string(inputs) + " inputs on a vector of " +
                          std::to_string(product(d[0])));
  if (b && static_cast<int64_t>(b->values.size()) != out)
    fail("node '" + node.name() + "': bias size");
  std::vector<float> weights(w.values.size());
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < inputs; ++i)
      weights[size_t(o * inputs + i)] =
          alpha * w.values[size_t(transposed ? i * out + o : o * inputs + i)];
  writer_.weights_fp32_flagged(weights);
  count_weights(&w);
  if (b) {
    std::vector<float> bias = b->values;
    for (float& v : bias) v *= beta;
    writer_.weights_raw(bias);
    count_weights(b);
  }
  ProbeDims dims;
  for (auto& v : dims) v = node.op_type() == "Gemm" ? Dims{1, out} : Dims{1, out, 1, 1};
  produce(node,
          writer_.layer("InnerProduct", {in},
                        "0=" + std::to_string(out) + " 1=" + (b ? "1" : "0") +
                            " 2=" + std::to_string(weights.size())),
          dims, true);
}

void Importer::deconvolution(const onnx::NodeProto& node) {
  if (vectors_.count(node.input(0)))
    unsupported(node, "a transposed convolution of a pooled vector");
  const std::string in = blob(node, 0);
  const ProbeDims& d = dims_of(node.input(0));
  const Constant* w = node.input_size() > 1 ? constant(node.input(1)) : nullptr;
  const Constant* b = has_input(node, 2) ? constant(node.input(2)) : nullptr;
  if (!w || w->dims.size() != 4) unsupported(node, "weights that are not a constant 4-D tensor");
  if (has_input(node, 2) && !b) unsupported(node, "a computed bias");
  const int64_t group = int_attribute(node, "group", 1);
  // ONNX: [in][out/group][kh][kw]; ncnn: per group [out/group][in/group][kh][kw].
  const int64_t in_c = w->dims[0], out_g = w->dims[1], kh = w->dims[2], kw = w->dims[3];
  if (group < 1 || in_c % group != 0 || d[0][1] != in_c)
    unsupported(node, "weights for " + std::to_string(in_c) + " input channels in " +
                          std::to_string(group) + " groups on " + std::to_string(d[0][1]));
  const int64_t out = out_g * group, in_g = in_c / group;
  if (b && static_cast<int64_t>(b->values.size()) != out)
    fail("node '" + node.name() + "': bias size");
  // Named references, not a structured binding: clang 14 (the fuzz build) cannot capture
  // bindings in the lambdas below.
  const ConvAttributes attributes = conv_attributes(node);
  const auto& strides = attributes.strides;
  const auto& dilations = attributes.dilations;
  const auto& pads = attributes.pads;
  const std::string& auto_pad = attributes.auto_pad;
  std::vector<int64_t> output_padding = ints_attribute(node, "output_padding");
  if (output_padding.empty()) output_padding = {0, 0};
  if (auto_pad != "NOTSET" && auto_pad != "VALID") unsupported(node, "auto_pad " + auto_pad);
  if (attribute(node, "output_shape")) unsupported(node, "a fixed output_shape");
  if (output_padding.size() != 2) unsupported(node, "output padding that is not 2-D");
  std::vector<float> weights(w->values.size());
  const int64_t k = kh * kw;
  for (int64_t g = 0; g < group; ++g)
    for (int64_t o = 0; o < out_g; ++o)
      for (int64_t i = 0; i < in_g; ++i)
        std::copy_n(w->values.begin() + ((g * in_g + i) * out_g + o) * k, k,
                    weights.begin() + ((g * out_g + o) * in_g + i) * k);
  write_weights(weights, w, b);
  ProbeDims dims;
  for (int p = 0; p < kProbes; ++p) {
    auto side = [&](int a) {
      const int64_t extent = (a ? kw - 1 : kh - 1) * dilations[a] + 1;
      return (d[p][2 + a] - 1) * strides[a] + extent + output_padding[a] - pads[a] - pads[a + 2];
    };
    dims[p] = {1, out, side(0), side(1)};
  }
  // ONNX pads: [top, left, bottom, right].
  std::string params =
      "0=" + std::to_string(out) + " 1=" + std::to_string(kw) + " 11=" + std::to_string(kh) +
      " 2=" + std::to_string(dilations[1]) + " 12=" + std::to_string(dilations[0]) +
      " 3=" + std::to_string(strides[1]) + " 13=" + std::to_string(strides[0]) +
      " 4=" + std::to_string(pads[1]) + " 14=" + std::to_string(pads[0]) +
      " 15=" + std::to_string(pads[3]) + " 16=" + std::to_string(pads[2]) +
      " 18=" + std::to_string(output_padding[1]) + " 19=" + std::to_string(output_padding[0]) +
      " 5=" + (b ? "1" : "0") + " 6=" + std::to_string(weights.size());
  if (group != 1) params += " 7=" + std::to_string(group);
  produce(node,
          writer_.layer(group == 1 ? "Deconvolution" : "DeconvolutionDepthWise", {in}, params),
          dims);
}

void Importer::space_to_depth(const onnx::NodeProto& node) {
  const int64_t r = int_attribute(node, "blocksize", 0);
  if (r < 1) unsupported(node, "no blocksize");
  const std::string x = blob(node, 0);
  ProbeDims dims = dims_of(node.input(0));
  for (Dims& d : dims) {
    if (d[2] % r || d[3] % r) unsupported(node, "a blocksize that does not divide the size");
    d = {1, d[1] * r * r, d[2] / r, d[3] / r};
  }
  produce(node, writer_.pixel_unshuffle(x, int(dims[0][1] / (r * r)), int(r), true), dims);
}

void Importer::convolution(const onnx::NodeProto& node) {
  const std::string in = blob(node, 0);
  const ProbeDims d = dims_of(node.input(0));
  const Constant* w = node.input_size() > 1 ? constant(node.input(1)) : nullptr;
  const Constant* b = has_input(node, 2) ? constant(node.input(2)) : nullptr;
  if (!w || w->dims.size() != 4) unsupported(node, "weights that are not a constant 4-D tensor");
  if (has_input(node, 2) && !b) unsupported(node, "a computed bias");
  if (vectors_.count(node.input(0))) {
    // A 1x1 convolution of a pooled vector (squeeze-and-excitation): a fully connected layer.
    if (w->dims[2] != 1 || w->dims[3] != 1 || int_attribute(node, "group", 1) != 1)
      unsupported(node, "a convolution of a pooled vector other than 1x1 in one group");
    return inner_product(node, in, *w, b, false, 1.f, 1.f);
  }
  const int64_t out = w->dims[0], kh = w->dims[2], kw = w->dims[3];
  if (b && static_cast<int64_t>(b->values.size()) != out)
    fail("node '" + node.name() + "': bias size");
  const int64_t group = int_attribute(node, "group", 1);
  // Named references, not a structured binding: clang 14 (the fuzz build) cannot capture
  // bindings in the lambdas below.
  const ConvAttributes attributes = conv_attributes(node);
  const auto& strides = attributes.strides;
  const auto& dilations = attributes.dilations;
  const auto& pads = attributes.pads;
  const std::string& auto_pad = attributes.auto_pad;
  std::string params = "0=" + std::to_string(out) + " 1=" + std::to_string(kw) +
                       " 11=" + std::to_string(kh) + " 2=" + std::to_string(dilations[1]) +
                       " 12=" + std::to_string(dilations[0]) + " 3=" + std::to_string(strides[1]) +
                       " 13=" + std::to_string(strides[0]);
  if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    params += auto_pad == "SAME_UPPER" ? " 4=-233" : " 4=-234";
  } else if (auto_pad == "NOTSET" || auto_pad == "VALID") {
    // ONNX: [top, left, bottom, right]
    params += " 4=" + std::to_string(pads[1]) + " 14=" + std::to_string(pads[0]) +
              " 15=" + std::to_string(pads[3]) + " 16=" + std::to_string(pads[2]);
  } else {
    unsupported(node, "auto_pad " + auto_pad);
  }
  params += std::string(" 5=") + (b ? "1" : "0") + " 6=" + std::to_string(w->values.size());
  if (group != 1) params += " 7=" + std::to_string(group);
  write_weights(w->values, w, b);
  ProbeDims dims;
  for (int p = 0; p < kProbes; ++p) {
    auto side = [&](int a) {
      const int64_t size = d[p][2 + a], extent = ((a ? kw : kh) - 1) * dilations[a] + 1;
      if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER")
        return (size + strides[a] - 1) / strides[a];
      return (size + pads[a] + pads[a + 2] - extent) / strides[a] + 1;
    };
    dims[p] = {1, out, side(0), side(1)};
  }
  produce(node, writer_.layer(group == 1 ? "Convolution" : "ConvolutionDepthWise", {in}, params),
          dims);
}

// Add (0), Sub (1), Mul (2), Div (3) of two tensors, or of a tensor and a constant scalar or
// per-channel constant.
void Importer::arithmetic(const onnx::NodeProto& node, int kind) {
  if (node.input_size() != 2) unsupported(node, "not two inputs");
  const Constant* a = constant(node.input(0));
  const Constant* b = constant(node.input(1));
  if (a && b) unsupported(node, "arithmetic on two constants");
  if (!a && !b) {
    // Two computed tensors: the same shape, or one of them per channel ([1, C, 1, 1], a pooled
    // vector in ncnn) broadcast over the other, or a single value.
    const std::string x = blob(node, 0), y = blob(node, 1);
    const ProbeDims &dx = dims_of(node.input(0)), &dy = dims_of(node.input(1));
    auto spreads_over = [](const Dims& small, const Dims& image) {
      return product(small) == 1 || (image.size() == 4 && small.size() >= 3 && small.size() <= 4 &&
                                     small[small.size() - 3] == image[1] &&
                                     small[small.size() - 2] == 1 && small.back() == 1);
    };
    int keep = -1;
    if (dx[0] == dy[0] && dx[1] == dy[1] && dx[2] == dy[2])
      keep = 0;
    else if (spreads_over(dy[0], dx[0]))
      keep = 0;
    else if (spreads_over(dx[0], dy[0]))
      keep = 1;
    if (keep < 0) unsupported(node, "operands that broadcast other than per channel");
    const std::string binary = writer_.layer("BinaryOp", {x, y}, "0=" + std::to_string(kind));
    return produce(node, binary, keep ? dy : dx, vectors_.count(node.input(keep)) > 0);
  }
  const bool constant_first = a != nullptr;
  const Constant& c = constant_first ? *a : *b;
  const std::string x = blob(node, constant_first ? 1 : 0);
  if (c.values.size() == 1) {
    // ncnn's rsub (7) and rdiv (8) put the scalar first.
    int k = kind;
    if (constant_first && kind == 1) k = 7;
    if (constant_first && kind == 3) k = 8;
    return produce_like(
        node,
        writer_.layer("BinaryOp", {x},
                      "0=" + std::to_string(k) + " 1=1 2=" + NcnnWriter::number(c.values[0])),
        constant_first ? 1 : 0);
  }
  if (vectors_.count(node.input(constant_first ? 1 : 0)))
    unsupported(node, "a per-channel constant on a pooled vector");
  // Per-channel: shape [1, C, 1, 1] or [C, 1, 1].
  size_t channels = c.values.size();
  const bool per_channel =
      (c.dims.size() == 4 && c.dims[0] == 1 && c.dims[2] == 1 && c.dims[3] == 1) ||
      (c.dims.size() == 3 && c.dims[1] == 1 && c.dims[2] == 1);
  if (!per_channel)
    unsupported(node, "a constant operand that is neither a scalar nor per-channel");
  std::vector<float> scale(channels, 1.f), bias(channels, 0.f);
  for (size_t i = 0; i < channels; ++i) {
    const float v = c.values[i];
    switch (kind) {
      case 0:
        bias[i] = v;
        break;
      case 1:
        constant_first ? (scale[i] = -1.f, bias[i] = v) : (bias[i] = -v);
        break;
      case 2:
        scale[i] = v;
        break;
      default:
        if (constant_first) unsupported(node, "a constant divided by a tensor");
        scale[i] = 1.f / v;
    }
  }
  writer_.weights_fp32_flagged(scale);
  writer_.weights_raw(bias);
  produce_like(node,
               writer_.layer("ConvolutionDepthWise", {x},
                             "0=" + std::to_string(channels) + " 1=1 5=1 6=" +
                                 std::to_string(channels) + " 7=" + std::to_string(channels)),
               constant_first ? 1 : 0);
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
    // Opset 18 may give scales and sizes for some axes only: here height and width.
    std::vector<int64_t> axes = ints_attribute(node, "axes");
    for (int64_t& a : axes) a = normalised_axis(a, 4);
    const bool spatial_only = axes == std::vector<int64_t>{2, 3};
    if (!axes.empty() && !spatial_only) unsupported(node, "a resize of axes other than 2 and 3");
    if (string_attribute(node, "keep_aspect_ratio_policy", "stretch") != "stretch")
      unsupported(node, "a keep_aspect_ratio_policy other than stretch");
    if (spatial_only && scales && scales->values.size() == 2) {
      from_attribute.values = {1.f, 1.f, scales->values[0], scales->values[1]};
      scales = &from_attribute;
    }
    if (node.op_type() == "Resize" && has_input(node, 3)) {
      // Sizes computed from the input's (F.interpolate(size=...), or scale_factor with
      // recompute_scale_factor): the same multiple of the input size at every probe.
      const Folded sizes = folded(node, 3);
      const ProbeDims& d = dims_of(node.input(0));
      from_attribute.values = {1.f, 1.f, 0.f, 0.f};
      for (int p = 0; p < kProbes; ++p) {
        std::vector<double> v = sizes.values[p];
        if (spatial_only && v.size() == 2) v.insert(v.begin(), {double(d[p][0]), double(d[p][1])});
        if (v.size() != 4 || v[0] != double(d[p][0]) || v[1] != double(d[p][1]))
          unsupported(node, "sizes that are not [N, C, height, width] of its input");
        for (int a : {2, 3}) {
          const float ratio = float(v[size_t(a)] / double(d[p][size_t(a)]));
          if (p > 0 && ratio != from_attribute.values[size_t(a)])
            unsupported(node,
                        "sizes that are not a fixed multiple of the input size" + fixed_size_hint_);
          from_attribute.values[size_t(a)] = ratio;
        }
      }
      scales = &from_attribute;
    }
  }
  if (!scales || scales->values.size() != 4 || scales->values[0] != 1.f || scales->values[1] != 1.f)
    unsupported(node, "scales that are not a constant [1, 1, h, w]");
  int resize_type = 0;
  if (mode == "nearest") {
    resize_type = 1;
    const std::string transform =
        string_attribute(node, "coordinate_transformation_mode", "half_pixel");
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
    const std::string transform =
        string_attribute(node, "coordinate_transformation_mode", "half_pixel");
    if (node.op_type() == "Resize" && transform != "half_pixel" &&
        transform != "pytorch_half_pixel")
      unsupported(node, "linear with " + transform);
  } else if (mode == "cubic" && node.op_type() == "Resize") {
    // ncnn's bicubic is PyTorch's: Keys' kernel with a = -0.75, half-pixel centres, the taps
    // beyond the edge clamped to it.
    resize_type = 3;
    const std::string transform =
        string_attribute(node, "coordinate_transformation_mode", "half_pixel");
    const auto* a = attribute(node, "cubic_coeff_a");
    if ((a && a->f() != -0.75f) || int_attribute(node, "exclude_outside", 0) != 0 ||
        (transform != "half_pixel" && transform != "pytorch_half_pixel"))
      unsupported(node, "cubic other than PyTorch's (a = -0.75, half_pixel)");
  } else {
    unsupported(node, "mode " + mode);
  }
  ProbeDims dims = dims_of(node.input(0));
  for (Dims& d : dims) {
    d[2] = int64_t(double(d[2]) * scales->values[2]);
    d[3] = int64_t(double(d[3]) * scales->values[3]);
  }
  produce(node,
          writer_.layer("Interp", {x},
                        "0=" + std::to_string(resize_type) +
                            " 1=" + NcnnWriter::number(scales->values[2]) +
                            " 2=" + NcnnWriter::number(scales->values[3])),
          dims);
}

void Importer::pad(const onnx::NodeProto& node) {
  const std::string x = blob(node, 0);
  std::vector<int64_t> pads = ints_attribute(node, "pads");
  if (node.input_size() > 1 && !node.input(1).empty()) {
    const Constant* p = constant(node.input(1));
    if (!p) unsupported(node, "computed pads");
    pads.assign(p->values.begin(), p->values.end());
  }
  if (has_input(node, 3)) {
    // Opset 18: pads for the listed axes only, all begins then all ends.
    const std::vector<int64_t> axes = fixed_ints(node, 3, "axes");
    if (pads.size() != 2 * axes.size()) unsupported(node, "pads that do not match its axes");
    std::vector<int64_t> full(8, 0);
    for (size_t i = 0; i < axes.size(); ++i) {
      const int64_t a = normalised_axis(axes[i], 4);
      if (a < 0) unsupported(node, "an axis out of range");
      full[size_t(a)] = pads[i];
      full[size_t(a) + 4] = pads[i + axes.size()];
    }
    pads = full;
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
  ProbeDims dims = dims_of(node.input(0));
  for (Dims& d : dims) d = {d[0], d[1], d[2] + pads[2] + pads[6], d[3] + pads[3] + pads[7]};
  produce(node,
          writer_.layer("Padding", {x},
                        "0=" + std::to_string(pads[2]) + " 1=" + std::to_string(pads[6]) +
                            " 2=" + std::to_string(pads[3]) + " 3=" + std::to_string(pads[7]) +
                            " 4=" + std::to_string(type) + " 5=" + NcnnWriter::number(value)),
          dims);
}

void Importer::clip(const onnx::NodeProto& node) {
  float low = -std::numeric_limits<float>::infinity(),
        high = std::numeric_limits<float>::infinity();
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
    produce_like(node, writer_.layer("ReLU", {x}, ""));
  } else if (low <= 0 && high >= 1 && graph_outputs_.count(node.output(0))) {
    // The final clamp to [0, 1]: the colour conversion after the network clamps the same way.
    produce_like(node, x);
  } else {
    unsupported(node, "bounds other than [0, inf) or a final [0, 1]");
  }
}

void Importer::translate(const onnx::NodeProto& node) {
  const std::string& op = node.op_type();
  if (!node.domain().empty() && node.domain() != "ai.onnx")
    unsupported(node, "an op of domain " + node.domain());
  if (node.output_size() < 1) fail("node '" + node.name() + "' has no output");
  static const std::set<std::string> image_only = {"Pad", "Resize", "Upsample", "DepthToSpace",
                                                   "SpaceToDepth"};
  static const std::set<std::string> layout_ops = {"Reshape", "Flatten", "Squeeze", "Unsqueeze",
                                                   "Transpose"};
  if (op == "Constant") {
    const auto* value = attribute(node, "value");
    if (!value || !value->has_t()) unsupported(node, "a constant that is not a tensor");
    constants_[node.output(0)] = to_constant(value->t());
  } else if (node.input_size() < 1 || node.input(0).empty()) {
    unsupported(node, "no input");
  } else if (image_only.count(op) && vectors_.count(node.input(0))) {
    unsupported(node, "a pooled vector where an image is expected");
  } else if (foldable(node)) {
    fold(node);
  } else if (layout_ops.count(op) && node.input_size() > 0 && is_tensor(node.input(0))) {
    layout(node);
  } else if (op == "Identity" || op == "Cast" || op == "Dropout") {
    if (const Constant* c = constant(node.input(0)))
      constants_[node.output(0)] = *c;
    else
      produce_like(node, blob(node, 0));
  } else if (op == "Conv") {
    convolution(node);
  } else if (op == "ConvTranspose") {
    deconvolution(node);
  } else if (op == "Gemm") {
    const Constant* w = node.input_size() > 1 ? constant(node.input(1)) : nullptr;
    const Constant* c = has_input(node, 2) ? constant(node.input(2)) : nullptr;
    if (!vectors_.count(node.input(0)) || int_attribute(node, "transA", 0) != 0)
      unsupported(node, "a matrix product other than of a pooled vector");
    if (!w || w->dims.size() != 2 || (has_input(node, 2) && !c))
      unsupported(node, "weights or bias that are not constants");
    const auto* alpha = attribute(node, "alpha");
    const auto* beta = attribute(node, "beta");
    inner_product(node, blob(node, 0), *w, c, int_attribute(node, "transB", 0) == 0,
                  alpha ? alpha->f() : 1.f, beta ? beta->f() : 1.f);
  } else if (op == "Relu") {
    produce_like(node, writer_.layer("ReLU", {blob(node, 0)}, ""));
  } else if (op == "LeakyRelu") {
    const auto* alpha = attribute(node, "alpha");
    produce_like(node, writer_.layer("ReLU", {blob(node, 0)},
                                     "0=" + NcnnWriter::number(alpha ? alpha->f() : 0.01f)));
  } else if (op == "Sigmoid") {
    produce_like(node, writer_.layer("Sigmoid", {blob(node, 0)}, ""));
  } else if (op == "PRelu") {
    const Constant* slope = node.input_size() > 1 ? constant(node.input(1)) : nullptr;
    if (!slope) unsupported(node, "slopes that are not a constant");
    if (vectors_.count(node.input(0))) unsupported(node, "a PReLU of a pooled vector");
    const std::string x = blob(node, 0);
    writer_.weights_raw(slope->values);
    count_weights(slope);
    produce_like(node, writer_.layer("PReLU", {x}, "0=" + std::to_string(slope->values.size())));
  } else if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") {
    arithmetic(node, op == "Add" ? 0 : op == "Sub" ? 1 : op == "Mul" ? 2 : 3);
  } else if (op == "Concat") {
    const int64_t axis = int_attribute(node, "axis", 1);
    if (axis != 1 && axis != -3)
      unsupported(node, "concatenation along an axis other than channels");
    std::vector<std::string> inputs;
    for (int i = 0; i < node.input_size(); ++i) inputs.push_back(blob(node, i));
    ProbeDims dims = dims_of(node.input(0));
    for (Dims& d : dims) d[1] = 0;
    for (int i = 0; i < node.input_size(); ++i) {
      if (vectors_.count(node.input(i))) unsupported(node, "a concatenation of pooled vectors");
      for (int p = 0; p < kProbes; ++p) dims[p][1] += dims_of(node.input(i))[p][1];
    }
    produce(node, writer_.layer("Concat", inputs, ""), dims);
  } else if (op == "DepthToSpace") {
    const int64_t block = int_attribute(node, "blocksize", 0);
    if (block < 1) unsupported(node, "no blocksize");
    const std::string mode = string_attribute(node, "mode", "DCR");
    if (mode != "DCR" && mode != "CRD") unsupported(node, "mode " + mode);
    const std::string x = blob(node, 0);
    ProbeDims dims = dims_of(node.input(0));
    for (Dims& d : dims) d = {d[0], d[1] / (block * block), d[2] * block, d[3] * block};
    // ncnn PixelShuffle mode 0 is PyTorch's pixel_shuffle (ONNX CRD), mode 1 DCR.
    produce(node,
            writer_.layer("PixelShuffle", {x},
                          "0=" + std::to_string(block) + " 1=" + (mode == "DCR" ? "1" : "0")),
            dims);
  } else if (op == "SpaceToDepth") {
    space_to_depth(node);
  } else if (op == "Slice") {
    slice(node);
  } else if (op == "Split") {
    split(node);
  } else if (op == "Resize" || op == "Upsample") {
    resize(node);
  } else if (op == "Pad") {
    pad(node);
  } else if (op == "Clip") {
    clip(node);
  } else if (op == "GlobalAveragePool" || op == "ReduceMean") {
    const bool keep = int_attribute(node, "keepdims", 1) != 0;
    if (op == "ReduceMean") {
      // Axes: an attribute up to opset 17, an input from 18.
      std::vector<int64_t> axes =
          has_input(node, 1) ? fixed_ints(node, 1, "axes") : ints_attribute(node, "axes");
      if (axes != std::vector<int64_t>{2, 3} && axes != std::vector<int64_t>{-2, -1})
        unsupported(node, "a mean over axes other than height and width");
    }
    if (vectors_.count(node.input(0))) unsupported(node, "a mean of a pooled vector");
    const std::string x = blob(node, 0);
    ProbeDims dims;
    for (int p = 0; p < kProbes; ++p) {
      const int64_t c = dims_of(node.input(0))[p][1];
      dims[p] = keep ? Dims{1, c, 1, 1} : Dims{1, c};
    }
    // ncnn's global pooling gives a [C] vector, which per-channel arithmetic broadcasts.
    produce(node, writer_.layer("Pooling", {x}, "0=1 4=1"), dims, true);
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
      if (type.tensor_type().shape().dim(2).has_dim_value() ||
          type.tensor_type().shape().dim(3).has_dim_value())
        fixed_size_hint_ =
            " (the graph was exported for one input size: export it with dynamic "
            "height and width)";
    } else if (type.has_tensor_type() && type.tensor_type().shape().dim_size() != 0) {
      fail("the input is not an NCHW image");
    }
    if (channels < 1 || channels > 4) fail("an input of " + std::to_string(channels) + " channels");
    blobs_[in.name()] = writer_.input(channels);
    for (int p = 0; p < kProbes; ++p)
      shapes_[in.name()][p] = {1, channels, kProbeHeights[size_t(p)], kProbeWidths[size_t(p)]};
  }
  if (inputs == 0) fail("no image input");
  if (graph_.output_size() != 1) fail("not exactly one output");
  for (const auto& node : graph_.node()) translate(node);
  if (layouts_.count(graph_.output(0).name())) resolve_layout(graph_.output(0).name());
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
