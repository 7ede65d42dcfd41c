// The ONNX importer's state and the pieces its two files share: onnx_import.cpp translates
// nodes into the ncnn graph, onnx_shapes.cpp folds shape arithmetic and matches layout chains
// (Reshape/Transpose) against pixel (un)shuffle. Private to src/weights.
#pragma once

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "ncnn_writer.hpp"
#include "upframe/error.hpp"
#include "upframe/weights/onnx_import.hpp"
#include "upframe/weights/state_dict.hpp"

namespace upframe::weights::onnx_detail {

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
inline int64_t product(const Dims& d, size_t from, size_t to) {
  int64_t n = 1;
  for (auto it = d.begin() + std::ptrdiff_t(from); it < d.begin() + std::ptrdiff_t(to); ++it)
    n *= *it;
  return n;
}
inline int64_t product(const Dims& d) { return product(d, 0, d.size()); }

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

// An axis attribute or input value in [0, rank), or -1 when out of range.
inline int64_t normalised_axis(int64_t axis, size_t rank) {
  if (axis < 0) axis += int64_t(rank);
  return axis >= 0 && axis < int64_t(rank) ? axis : -1;
}

// ONNX Slice bounds of one axis of size `dim`: [start, end) after the negative-index and
// clamping rules (steps of 1).
inline std::pair<int64_t, int64_t> slice_bounds(double start, double end, int64_t dim) {
  auto clamp = [dim](double v) {
    if (v < 0) v += double(dim);
    return int64_t(std::clamp(v, 0.0, double(dim)));
  };
  const int64_t s = clamp(start), e = clamp(end);
  return {s, std::max(s, e)};
}

}  // namespace upframe::weights::onnx_detail
