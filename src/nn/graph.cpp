#include "nn/graph.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>

#include "upframe/error.hpp"

namespace upframe::nn {

namespace {

// An int64 value as an int, saturating (callers reject values this far out of range anyway).
int saturate(int64_t v) { return int(std::clamp<int64_t>(v, INT_MIN, INT_MAX)); }

}  // namespace

int64_t kernel_extent(int kernel, int dilation) { return int64_t(dilation) * (kernel - 1) + 1; }

ConvPads resolve_conv_pads(const ConvParams& c, int in_h, int in_w) {
  if (c.pad_left != -233 && c.pad_left != -234)
    return {c.pad_left, c.pad_right, c.pad_top, c.pad_bottom};
  // SAME: output = ceil(input / stride); -233 puts the odd pixel at the end, -234 at the start.
  auto split = [&](int in, int k, int d, int s, int* lo, int* hi) {
    int64_t out = (int64_t(in) + s - 1) / s;
    int64_t total = std::max<int64_t>(0, (out - 1) * s + kernel_extent(k, d) - in);
    int64_t low = c.pad_left == -233 ? total / 2 : total - total / 2;
    *lo = saturate(low);
    *hi = saturate(total - low);
  };
  ConvPads p{};
  split(in_w, c.kernel_w, c.dilation_w, c.stride_w, &p.left, &p.right);
  split(in_h, c.kernel_h, c.dilation_h, c.stride_h, &p.top, &p.bottom);
  return p;
}

CropRegion resolve_crop(const CropParams& c, const Shape& in, const Shape* reference) {
  CropRegion r{0, 0, 0, in};
  if (!c.starts.empty()) {
    for (size_t i = 0; i < c.starts.size(); ++i) {
      int axis = c.axes.empty() ? int(i) : c.axes[i];
      if (axis < 0) axis += in.dims;
      int64_t size = in.dims == 1 ? in.w : (axis == 0 ? in.c : axis == 1 ? in.h : in.w);
      int64_t start = c.starts[i] == -233 ? 0 : c.starts[i];
      int64_t end = c.ends[i] == -233 ? size : c.ends[i];
      int offset = saturate(start >= 0 ? start : size + start);
      int extent = saturate(std::min(size, end > 0 ? end : size + end) - offset);
      if (in.dims == 1 || axis == 2) {
        r.woffset = offset;
        r.out.w = extent;
      } else if (axis == 1) {
        r.hoffset = offset;
        r.out.h = extent;
      } else {
        r.coffset = offset;
        r.out.c = extent;
      }
    }
  } else if (reference) {
    r.woffset = c.woffset;
    r.hoffset = c.hoffset;
    r.coffset = c.coffset;
    r.out.w = reference->w;
    r.out.h = reference->h;
    if (in.dims == 3 && reference->dims == 3) r.out.c = reference->c;
  } else {
    r.woffset = c.woffset;
    r.hoffset = c.hoffset;
    r.coffset = in.dims == 3 ? c.coffset : 0;
    r.out.w = saturate(int64_t(in.w) - c.woffset - c.woffset2);
    if (c.outw > 0) r.out.w = std::min(c.outw, r.out.w);
    if (in.dims == 3) {
      r.out.h = saturate(int64_t(in.h) - c.hoffset - c.hoffset2);
      if (c.outh > 0) r.out.h = std::min(c.outh, r.out.h);
      r.out.c = saturate(int64_t(in.c) - c.coffset - c.coffset2);
      if (c.outc > 0) r.out.c = std::min(c.outc, r.out.c);
    }
  }
  return r;
}

void Graph::finalize() {
  // Kahn's algorithm, stable: an op runs as soon as its inputs exist, in file order otherwise.
  std::vector<int> producer(blob_names.size(), -1);
  for (size_t i = 0; i < ops.size(); ++i)
    for (int b : ops[i].outputs) producer[b] = int(i);
  std::vector<bool> done(ops.size(), false), ready(blob_names.size(), false);
  std::vector<Op> ordered;
  while (ordered.size() < ops.size()) {
    bool progressed = false;
    for (size_t i = 0; i < ops.size(); ++i) {
      if (done[i]) continue;
      bool inputs_ready = true;
      for (int b : ops[i].inputs) {
        if (producer[b] < 0)
          throw Error(param_path, "line " + std::to_string(ops[i].line) + ": layer " + ops[i].name +
                                      ": blob '" + blob_names[b] + "' is never produced");
        inputs_ready = inputs_ready && ready[b];
      }
      if (!inputs_ready) continue;
      done[i] = true;
      progressed = true;
      for (int b : ops[i].outputs) ready[b] = true;
      ordered.push_back(ops[i]);
    }
    if (!progressed) throw Error(param_path, "the layers form a cycle");
  }
  ops = std::move(ordered);

  input_blob = output_blob = -1;
  std::vector<int> readers(blob_names.size(), 0);
  for (const Op& op : ops)
    for (int b : op.inputs) ++readers[b];
  std::vector<std::string> outputs;
  for (const Op& op : ops) {
    if (op.type == OpType::kInput) {
      if (input_blob >= 0) throw Error(param_path, "the model has more than one Input layer");
      input_blob = op.outputs[0];
    }
    for (int b : op.outputs)
      if (readers[b] == 0) {
        output_blob = b;
        outputs.push_back(blob_names[b]);
      }
  }
  if (input_blob < 0) throw Error(param_path, "the model has no Input layer");
  if (outputs.size() != 1) {
    std::string names;
    for (auto& n : outputs) names += (names.empty() ? "" : ", ") + n;
    throw Error(param_path, "the model must have exactly one output blob, it has " +
                                std::to_string(outputs.size()) + " (" + names + ")");
  }
}

std::vector<int> Graph::last_uses() const {
  std::vector<int> last(blob_names.size(), -1);
  for (size_t i = 0; i < ops.size(); ++i)
    for (int b : ops[i].inputs) last[b] = int(i);
  if (output_blob >= 0) last[output_blob] = int(ops.size());
  return last;
}

bool is_activation(OpType type) {
  return type == OpType::kPReLU || type == OpType::kReLU || type == OpType::kSigmoid ||
         type == OpType::kMish;
}

ActivationSpec activation_of(const Op& op) {
  ActivationSpec a;
  if (op.type == OpType::kPReLU) {
    a.type = Activation::kPReLU;
    a.prelu_slopes = op.get<PReLUParams>().slopes;
  } else if (op.type == OpType::kReLU) {
    const float slope = op.get<ReLUParams>().slope;
    a.type = slope == 0.f ? Activation::kReLU : Activation::kLeakyReLU;
    a.alpha = slope;
  } else if (op.type == OpType::kMish) {
    a.type = Activation::kMish;
  } else {
    a.type = Activation::kSigmoid;
  }
  return a;
}

void Graph::simplify() {
  // Splits: readers of a Split output read the Split's input instead.
  std::vector<int> alias(blob_names.size());
  std::iota(alias.begin(), alias.end(), 0);
  std::vector<Op> kept;
  for (Op& op : ops) {
    for (int& b : op.inputs) b = alias[b];
    if (op.type == OpType::kSplit) {
      for (int b : op.outputs) alias[b] = op.inputs[0];
      continue;
    }
    kept.push_back(std::move(op));
  }
  ops = std::move(kept);

  // Activation folding into the convolution before it.
  std::vector<int> readers(blob_names.size(), 0);
  for (const Op& op : ops)
    for (int b : op.inputs) ++readers[b];
  std::map<int, size_t> producer;
  for (size_t i = 0; i < ops.size(); ++i)
    for (int b : ops[i].outputs) producer[b] = i;
  std::vector<bool> removed(ops.size(), false);
  for (size_t i = 0; i < ops.size(); ++i) {
    Op& act = ops[i];
    if (!is_activation(act.type)) continue;
    int src = act.inputs[0];
    auto it = producer.find(src);
    if (it == producer.end() || readers[src] != 1) continue;
    Op& conv = ops[it->second];
    if (conv.type != OpType::kConvolution && conv.type != OpType::kDeconvolution) continue;
    ConvParams& c = conv.get<ConvParams>();
    if (c.activation.type != Activation::kNone) continue;
    if (act.type == OpType::kPReLU) {
      const size_t slopes = act.get<PReLUParams>().slopes.size();
      if (slopes != 1 && int(slopes) != c.num_output) continue;
    }
    c.activation = activation_of(act);
    conv.outputs[0] = act.outputs[0];
    producer[act.outputs[0]] = it->second;
    removed[i] = true;
  }
  kept.clear();
  for (size_t i = 0; i < ops.size(); ++i)
    if (!removed[i]) kept.push_back(std::move(ops[i]));
  ops = std::move(kept);
  finalize();
}

ShapeContext::ShapeContext(const std::string& file, const Op& op, std::vector<Shape> inputs,
                           const Shape& graph_input)
    : op(op), in(std::move(inputs)), graph_input(graph_input), file_(file) {}

Error ShapeContext::fail(const std::string& what) const {
  return Error(file_, "line " + std::to_string(op.line) + ": layer " + op.name + " (" +
                          op_type_name(op.type) + "): bad shape: " + what);
}

std::string ShapeContext::text(const Shape& s) {
  // Built with append: GCC 12 warns (-Wrestrict, a false positive) on "[" + string.
  std::string text;
  if (s.dims == 1)
    text.append("[").append(std::to_string(s.w)).append("]");
  else
    text = std::to_string(s.c) + "x" + std::to_string(s.h) + "x" + std::to_string(s.w);
  return text;
}

std::string ShapeContext::in_text() const { return in.empty() ? text(graph_input) : text(in[0]); }

void ShapeContext::need_image(const Shape& s) const {
  if (s.dims != 3) throw fail("expects an image blob, got a vector " + text(s));
}

Shape ShapeContext::checked(int dims, int64_t c, int64_t h, int64_t w) const {
  if (c <= 0 || h <= 0 || w <= 0) throw fail("input " + in_text() + " gives an empty output");
  if (c > kMaxShapeSide || h > kMaxShapeSide || w > kMaxShapeSide || c * h * w > kMaxShapeElements)
    throw fail("output size out of range: input " + in_text() + " gives " +
               (dims == 1 ? "[" + std::to_string(w) + "]"
                          : std::to_string(c) + "x" + std::to_string(h) + "x" + std::to_string(w)) +
               " (at most " + std::to_string(kMaxShapeSide) + " a side and " +
               std::to_string(kMaxShapeElements) + " values)");
  return Shape{dims, int(c), int(h), int(w)};
}

std::vector<Shape> Graph::infer_shapes(const Shape& input) const {
  std::vector<Shape> shapes(blob_names.size(), Shape{0, 0, 0, 0});
  for (const Op& op : ops) {
    std::vector<Shape> in;
    for (int b : op.inputs) in.push_back(shapes[b]);
    const ShapeContext context(param_path, op, std::move(in), input);
    Shape out = op_shape_function(op.type)(context);
    // Shapes passed through (the Input's own included) get the same checks.
    out = context.checked(out.dims, out.c, out.h, out.w);
    for (int b : op.outputs) shapes[b] = out;
  }
  return shapes;
}

int Graph::receptive_radius(bool* global_context, int* tile_alignment) const {
  *global_context = false;
  if (tile_alignment) *tile_alignment = 1;
  // Scales come from the shapes at a moderate size; try a few in case the graph needs more.
  std::vector<Shape> shapes;
  for (int size : {256, 512, 1024}) {
    try {
      shapes = infer_shapes(Shape{3, 3, size, size});
      break;
    } catch (const Error&) {
    }
  }
  if (shapes.empty()) return 0;
  double input_w = shapes[input_blob].w;
  // radius[b]: input pixels each side that blob b's pixel depends on.
  std::vector<double> radius(blob_names.size(), 0.0);
  double smallest_scale = 1.0;  // of any blob against the input (strides, pixel unshuffle)
  for (const Op& op : ops) {
    double r = 0;
    for (int b : op.inputs) r = std::max(r, radius[b]);
    double in_scale = op.inputs.empty() ? 1.0 : shapes[op.inputs[0]].w / input_w;
    for (int b : op.outputs)
      if (shapes[b].dims == 3) smallest_scale = std::min(smallest_scale, shapes[b].w / input_w);
    double extra = 0;  // in pixels of the op's input
    switch (op.type) {
      case OpType::kConvolution: {
        const ConvParams& c = op.get<ConvParams>();
        const int64_t reach = std::max(kernel_extent(c.kernel_w, c.dilation_w),
                                       kernel_extent(c.kernel_h, c.dilation_h)) -
                              1;
        const int stride = std::max(c.stride_w, c.stride_h);
        extra = std::ceil(reach / 2.0) + (stride > 1 ? stride : 0);
        break;
      }
      case OpType::kDeconvolution: {
        const ConvParams& c = op.get<ConvParams>();
        const int64_t reach = std::max(kernel_extent(c.kernel_w, c.dilation_w),
                                       kernel_extent(c.kernel_h, c.dilation_h));
        extra = std::ceil(double(reach) / std::min(c.stride_w, c.stride_h));
        break;
      }
      case OpType::kInterp:
        extra = op.get<InterpParams>().resize_type == ResizeType::kBicubic ? 2 : 1;
        break;
      case OpType::kPooling:
      case OpType::kGroupNorm:  // statistics over the whole image
      case OpType::kDySample:   // sample positions the data chooses, anywhere in the image
        *global_context = true;
        break;
      default:
        break;
    }
    r += extra / in_scale;
    for (int b : op.outputs) radius[b] = r;
  }
  // A graph that downsamples by f (a stride-f convolution, a pixel unshuffle) gives a tile
  // other pixels unless the tile's window starts on a multiple of f: a radius that is a
  // multiple of f keeps every window (core minus overlap) aligned when tiles are.
  const double align = smallest_scale < 1.0 ? std::round(1.0 / smallest_scale) : 1.0;
  if (tile_alignment) *tile_alignment = int(std::min<double>(align, kMaxShapeSide));
  // Compared in double before the conversion: a long chain of wide ops can sum past INT_MAX.
  const double result = std::ceil(std::ceil(radius[output_blob] - 1e-9) / align) * align;
  if (!(result <= kMaxShapeSide)) {
    *global_context = true;  // no allowed image is wide enough to hold the context
    return kMaxShapeSide;
  }
  return int(result);
}

size_t BufferPlan::total_bytes() const {
  return std::accumulate(slot_bytes.begin(), slot_bytes.end(), size_t(0));
}

BufferPlan plan_buffers(const Graph& graph, const std::vector<size_t>& bytes) {
  BufferPlan plan;
  plan.blob_slot.assign(graph.blob_names.size(), -1);
  std::vector<int> last = graph.last_uses();
  std::vector<int> free_slots;
  for (size_t i = 0; i < graph.ops.size(); ++i) {
    const Op& op = graph.ops[i];
    for (int b : op.outputs) {
      // Best fit: the smallest free slot that holds it, else grow the largest free one.
      int best = -1;
      for (int s : free_slots) {
        bool fits = plan.slot_bytes[s] >= bytes[b];
        if (best < 0) {
          best = s;
          continue;
        }
        bool best_fits = plan.slot_bytes[best] >= bytes[b];
        if (fits && (!best_fits || plan.slot_bytes[s] < plan.slot_bytes[best])) best = s;
        if (!fits && !best_fits && plan.slot_bytes[s] > plan.slot_bytes[best]) best = s;
      }
      if (best < 0) {
        best = int(plan.slot_bytes.size());
        plan.slot_bytes.push_back(0);
      } else {
        free_slots.erase(std::find(free_slots.begin(), free_slots.end(), best));
      }
      plan.slot_bytes[best] = std::max(plan.slot_bytes[best], bytes[b]);
      plan.blob_slot[b] = best;
    }
    // A blob read twice by this op is freed once.
    std::vector<int> inputs = op.inputs;
    std::sort(inputs.begin(), inputs.end());
    inputs.erase(std::unique(inputs.begin(), inputs.end()), inputs.end());
    for (int b : inputs)
      if (last[b] == int(i)) free_slots.push_back(plan.blob_slot[b]);
    for (int b : op.outputs)  // produced but never read (not the output): free at once
      if (last[b] < 0) free_slots.push_back(plan.blob_slot[b]);
  }
  return plan;
}

}  // namespace upframe::nn
