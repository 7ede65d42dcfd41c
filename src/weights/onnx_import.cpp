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
#include <cmath>
#include <cstring>
#include <limits>

#include "onnx_importer.hpp"
#include "upframe/error.hpp"
#include "upframe/weights/float16.hpp"

namespace upframe::weights::onnx_detail {

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

}  // namespace upframe::weights::onnx_detail

namespace upframe::weights {

OnnxImport import_onnx(std::span<const uint8_t> bytes, const std::string& name) {
  onnx::ModelProto model;
  if (bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max()) ||
      !model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    throw Error(name, "not a readable ONNX model");
  if (!model.has_graph()) throw Error(name, "ONNX: the model has no graph");
  return onnx_detail::Importer(model, name).run();
}

}  // namespace upframe::weights
