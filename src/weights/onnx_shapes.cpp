// Shape arithmetic folded at the probe input sizes, and layout chains (Reshape, Transpose,
// Squeeze, Unsqueeze, Flatten) matched against pixel shuffle and unshuffle: the part of the
// ONNX importer that works out what a dynamic-size export computes (see onnx_import.cpp).
#include <cmath>
#include <limits>

#include "onnx_importer.hpp"

namespace upframe::weights::onnx_detail {

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

}  // namespace upframe::weights::onnx_detail
