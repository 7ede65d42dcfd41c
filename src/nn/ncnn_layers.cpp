// ncnn's layer types as upframe reads them: one parser per type (its .param parameters,
// checked, into the op's typed parameters; its weights claimed from the .bin), its output
// shape for its inputs (Graph::infer_shapes) and, for the types with weights, their loading
// in .bin order.
#include <array>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "nn/ncnn_format.hpp"

namespace upframe::nn::ncnn {

namespace {

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
    case 5:
      a.type = Activation::kMish;
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
  // ncnn's dynamic-weight flag: param 19 of a Convolution; a Deconvolution's 19 is its
  // bottom output padding and its flag is 28.
  p.require_absent(deconv ? 28 : 19, "dynamic weights");
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

OpParams parse_input(const LayerLine& l) {
  l.need_io(0, 0, 1);
  return InputParams{l.p.get_int(2, 0)};
}

OpParams parse_split(const LayerLine& l) {
  l.need_io(1, 1, -1);
  return SplitParams{};
}

template <bool kDeconv, bool kDepthwise>
OpParams parse_conv(const LayerLine& l) {
  l.need_io(1, 1, 1);
  ConvParams c;
  read_conv_params(l.p, kDeconv, kDepthwise, &c, l.bin_bytes_left);
  return c;
}

OpParams parse_prelu(const LayerLine& l) {
  l.need_io(1, 1, 1);
  int n = l.p.get_int(0, 0);
  if (n <= 0) l.p.fail(0, "num_slope must be positive");
  claim_weights(l.p, 0, n, l.bin_bytes_left);
  PReLUParams prelu;
  prelu.slopes.resize(n);
  return prelu;
}

OpParams parse_relu(const LayerLine& l) {
  l.need_io(1, 1, 1);
  return ReLUParams{l.p.get_float(0, 0.f)};
}

OpParams parse_sigmoid(const LayerLine& l) {
  l.need_io(1, 1, 1);
  return SigmoidParams{};
}

OpParams parse_mish(const LayerLine& l) {
  l.need_io(1, 1, 1);
  return MishParams{};
}

// The affine weights of a norm: gamma then beta, `channels` raw floats each.
void claim_norm_weights(const LayerLine& l, int id, NormParams* norm) {
  if (norm->channels <= 0) l.p.fail(id, "channel count must be positive");
  if (!norm->affine) return;
  claim_weights(l.p, id, int64_t(norm->channels) * 2, l.bin_bytes_left);
  norm->gamma.resize(norm->channels);
  norm->beta.resize(norm->channels);
}

// ncnn's GroupNorm: 0=groups 1=channels 2=eps 3=affine.
OpParams parse_groupnorm(const LayerLine& l) {
  l.need_io(1, 1, 1);
  NormParams norm;
  norm.groups = l.p.get_int(0, 1);
  norm.channels = l.p.get_int(1, 0);
  norm.eps = l.p.get_float(2, 0.001f);
  norm.affine = l.p.get_int(3, 1) != 0;
  if (norm.groups <= 0 || norm.channels % norm.groups != 0)
    l.p.fail(0, "group count must divide the channel count");
  if (!(norm.eps > 0.f)) l.p.fail(2, "eps must be positive");
  claim_norm_weights(l, 1, &norm);
  return norm;
}

// LayerNorm over the channels of each pixel, as ConvNeXt's and RealPLKSR's channels-first
// LayerNorm: 0=channels 1=eps 2=affine, and 3=1 marking this form (upframe's: ncnn's LayerNorm
// normalises each row or each channel plane instead, and is refused).
OpParams parse_layernorm(const LayerLine& l) {
  l.need_io(1, 1, 1);
  if (l.p.get_int(3, 0) != 1)
    l.p.unsupported("LayerNorm over rows or channel planes (only over channels, param 3=1)");
  NormParams norm;
  norm.channels = l.p.get_int(0, 0);
  norm.eps = l.p.get_float(1, 0.001f);
  norm.affine = l.p.get_int(2, 1) != 0;
  if (!(norm.eps > 0.f)) l.p.fail(1, "eps must be positive");
  claim_norm_weights(l, 0, &norm);
  return norm;
}

// upframe's DySample (see DySampleParams): 0=scale 1=groups; inputs the image and its offsets.
OpParams parse_dysample(const LayerLine& l) {
  l.need_io(2, 2, 1);
  DySampleParams d{l.p.get_int(0, 2), l.p.get_int(1, 1)};
  if (d.scale <= 0) l.p.fail(0, "scale must be positive");
  if (d.groups <= 0) l.p.fail(1, "group count must be positive");
  return d;
}

OpParams parse_pixelshuffle(const LayerLine& l) {
  l.need_io(1, 1, 1);
  const int factor = l.p.get_int(0, 1), mode = l.p.get_int(1, 0);
  if (factor <= 0) l.p.fail(0, "upscale factor must be positive");
  if (mode != 0 && mode != 1) l.p.fail(1, "mode must be 0 or 1");
  return PixelShuffleParams{factor, PixelShuffleMode(mode)};
}

OpParams parse_interp(const LayerLine& l) {
  const LayerParams& p = l.p;
  l.need_io(1, 1, 1);
  InterpParams interp;
  const int resize_type = p.get_int(0, 0);
  interp.height_scale = p.get_float(1, 1.f);
  interp.width_scale = p.get_float(2, 1.f);
  interp.output_height = p.get_int(3, 0);
  interp.output_width = p.get_int(4, 0);
  if (resize_type < 1 || resize_type > 3)
    p.unsupported("resize type " + std::to_string(resize_type) + " (param 0)");
  interp.resize_type = ResizeType(resize_type);
  if (p.get_int(5, 0) != 0) p.unsupported("dynamic target size (param 5)");
  if (p.get_int(6, 0) != 0) p.unsupported("align_corner=1 (param 6)");
  if (interp.height_scale <= 0 || interp.width_scale <= 0) p.fail(1, "scale must be positive");
  return interp;
}

OpParams parse_binaryop(const LayerLine& l) {
  BinaryParams binary;
  const int kind = l.p.get_int(0, 0);
  if (kind < 0 || kind > 8) l.p.unsupported("BinaryOp type " + std::to_string(kind));
  binary.kind = BinaryKind(kind);
  binary.with_scalar = l.p.get_int(1, 0) != 0;
  binary.scalar = l.p.get_float(2, 0.f);
  l.need_io(binary.with_scalar ? 1 : 2, binary.with_scalar ? 1 : 2, 1);
  return binary;
}

OpParams parse_eltwise(const LayerLine& l) {
  l.need_io(2, 1 << 20, 1);
  EltwiseParams eltwise;
  const int kind = l.p.get_int(0, 1);
  eltwise.coefficients = l.p.get_floats(1);
  if (kind < 0 || kind > 2) l.p.unsupported("Eltwise type " + std::to_string(kind));
  eltwise.kind = EltwiseKind(kind);
  if (!eltwise.coefficients.empty() && eltwise.coefficients.size() != size_t(l.bottoms))
    l.p.fail(1, "coefficient count differs from the input count");
  return eltwise;
}

OpParams parse_concat(const LayerLine& l) {
  l.need_io(1, 1 << 20, 1);
  return ConcatParams{l.p.get_int(0, 0)};
}

OpParams parse_crop(const LayerLine& l) {
  const LayerParams& p = l.p;
  CropParams c;
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
  const bool slice = !c.starts.empty();
  const bool by_reference = !slice && c.outw == 0 && c.outh == 0 && c.outc == 0 && l.bottoms == 2;
  l.need_io(1, by_reference ? 2 : 1, 1);
  return c;
}

OpParams parse_padding(const LayerLine& l) {
  const LayerParams& p = l.p;
  l.need_io(1, 1, 1);
  PaddingParams pd;
  pd.top = p.get_int(0, 0);
  pd.bottom = p.get_int(1, 0);
  pd.left = p.get_int(2, 0);
  pd.right = p.get_int(3, 0);
  const int type = p.get_int(4, 0);
  pd.value = p.get_float(5, 0.f);
  if (type < 0 || type > 2) p.unsupported("padding type " + std::to_string(type));
  pd.type = PaddingType(type);
  if (p.get_int(6, 0) != 0) p.unsupported("per-channel pad values (param 6)");
  if (p.get_int(7, 0) != 0 || p.get_int(8, 0) != 0) p.unsupported("channel padding");
  if (pd.top < 0 || pd.bottom < 0 || pd.left < 0 || pd.right < 0) p.fail(0, "negative padding");
  return pd;
}

OpParams parse_pooling(const LayerLine& l) {
  l.need_io(1, 1, 1);
  PoolingParams pooling;
  const int kind = l.p.get_int(0, 0);
  pooling.global = l.p.get_int(4, 0) != 0;
  if (kind != 0 && kind != 1) l.p.unsupported("pooling type " + std::to_string(kind));
  pooling.kind = PoolingKind(kind);
  if (!pooling.global) l.p.unsupported("windowed pooling (only global pooling, param 4=1)");
  return pooling;
}

OpParams parse_innerproduct(const LayerLine& l) {
  const LayerParams& p = l.p;
  l.need_io(1, 1, 1);
  InnerProductParams inner;
  inner.num_output = p.get_int(0, 0);
  inner.bias_term = p.get_int(1, 0) != 0;
  const int size = p.get_int(2, 0);
  if (inner.num_output <= 0) p.fail(0, "num_output must be positive");
  if (size <= 0 || size % inner.num_output != 0)
    p.fail(2, "weight_data_size is not a multiple of num_output");
  if (p.get_int(8, 0) != 0) p.unsupported("int8 quantized weights (param 8)");
  claim_weights(p, 2, size, l.bin_bytes_left);
  inner.weights.resize(size);
  inner.activation = read_activation(p);
  return inner;
}

void load_conv(WeightReader& weights, Op& op) {
  ConvParams& c = op.get<ConvParams>();
  weights.load_flagged(&c.weights, op.name);
  if (c.bias_term) {
    c.bias.resize(c.num_output);
    weights.load_raw(&c.bias, op.name, "bias");
  }
}

void load_prelu(WeightReader& weights, Op& op) {
  weights.load_raw(&op.get<PReLUParams>().slopes, op.name, "PReLU slopes");
}

void load_norm(WeightReader& weights, Op& op) {
  NormParams& p = op.get<NormParams>();
  if (!p.affine) return;
  weights.load_raw(&p.gamma, op.name, "gamma");
  weights.load_raw(&p.beta, op.name, "beta");
}

void load_innerproduct(WeightReader& weights, Op& op) {
  InnerProductParams& p = op.get<InnerProductParams>();
  weights.load_flagged(&p.weights, op.name);
  if (p.bias_term) {
    p.bias.resize(p.num_output);
    weights.load_raw(&p.bias, op.name, "bias");
  }
}


// --- shapes: each type's output shape for its inputs (Graph::infer_shapes) -----------------

Shape shape_input(const ShapeContext& x) {
  const int channels = x.op.get<InputParams>().channels;
  if (channels > 0 && x.graph_input.c != channels)
    throw x.fail("the model takes " + std::to_string(channels) + " channels, got " +
                 std::to_string(x.graph_input.c));
  return x.graph_input;
}

// Split, ReLU, Sigmoid: the input's shape.
Shape shape_same(const ShapeContext& x) { return x.in[0]; }

Shape shape_conv(const ShapeContext& x) {
  const ConvParams& c = x.op.get<ConvParams>();
  const Shape& in = x.in[0];
  x.need_image(in);
  size_t per_group_in = c.weights.size() / (size_t(c.num_output) * c.kernel_w * c.kernel_h);
  if (in.c % c.groups != 0 || size_t(in.c / c.groups) != per_group_in)
    throw x.fail("weights expect " + std::to_string(per_group_in * c.groups) +
                 " input channels, got " + std::to_string(in.c));
  const int64_t ext_w = kernel_extent(c.kernel_w, c.dilation_w);
  const int64_t ext_h = kernel_extent(c.kernel_h, c.dilation_h);
  if (ext_w > kMaxShapeSide || ext_h > kMaxShapeSide)
    throw x.fail("kernel extent out of range: dilation " + std::to_string(c.dilation_w) + "x" +
                 std::to_string(c.dilation_h) + " with kernel " + std::to_string(c.kernel_w) +
                 "x" + std::to_string(c.kernel_h) + " spans " + std::to_string(ext_w) + "x" +
                 std::to_string(ext_h) + " pixels (at most " + std::to_string(kMaxShapeSide) +
                 ")");
  Shape out;
  if (x.op.type == OpType::kConvolution) {
    ConvPads p = resolve_conv_pads(c, in.h, in.w);
    const int64_t w = int64_t(in.w) + p.left + p.right;
    const int64_t h = int64_t(in.h) + p.top + p.bottom;
    if (w < ext_w || h < ext_h)
      throw x.fail("input " + ShapeContext::text(in) + " is smaller than the kernel");
    out = x.checked(3, c.num_output, (h - ext_h) / c.stride_h + 1, (w - ext_w) / c.stride_w + 1);
  } else {
    const int64_t w =
        int64_t(in.w - 1) * c.stride_w + ext_w + c.output_pad_right - c.pad_left - c.pad_right;
    const int64_t h =
        int64_t(in.h - 1) * c.stride_h + ext_h + c.output_pad_bottom - c.pad_top - c.pad_bottom;
    out = x.checked(3, c.num_output, h, w);
  }
  if (c.activation.type == Activation::kPReLU && c.activation.prelu_slopes.size() != 1 &&
      int(c.activation.prelu_slopes.size()) != c.num_output)
    throw x.fail("PReLU slope count differs from the channel count");
  return out;
}

Shape shape_prelu(const ShapeContext& x) {
  x.need_image(x.in[0]);
  const size_t slopes = x.op.get<PReLUParams>().slopes.size();
  if (slopes != 1 && int(slopes) != x.in[0].c)
    throw x.fail(std::to_string(slopes) + " slopes for " + std::to_string(x.in[0].c) +
                 " channels");
  return x.in[0];
}

Shape shape_norm(const ShapeContext& x) {
  x.need_image(x.in[0]);
  const int channels = x.op.get<NormParams>().channels;
  if (x.in[0].c != channels)
    throw x.fail("made for " + std::to_string(channels) + " channels, got " + x.in_text());
  return x.in[0];
}

Shape shape_dysample(const ShapeContext& x) {
  const Shape &in = x.in[0], &offsets = x.in[1];
  x.need_image(in);
  x.need_image(offsets);
  const DySampleParams& d = x.op.get<DySampleParams>();
  if (in.c % d.groups != 0)
    throw x.fail(std::to_string(d.groups) + " groups do not divide " + x.in_text());
  if (offsets.h != in.h || offsets.w != in.w ||
      int64_t(offsets.c) != int64_t(2) * d.groups * d.scale * d.scale)
    throw x.fail("offsets " + ShapeContext::text(offsets) +
                 " are not 2 x groups x scale^2 "
                 "channels of the image's size");
  return x.checked(3, in.c, int64_t(in.h) * d.scale, int64_t(in.w) * d.scale);
}

Shape shape_pixelshuffle(const ShapeContext& x) {
  const Shape& in = x.in[0];
  x.need_image(in);
  const int64_t r = x.op.get<PixelShuffleParams>().factor;
  if (in.c % (r * r) != 0)
    throw x.fail(std::to_string(in.c) + " channels do not divide by the factor squared");
  return x.checked(3, in.c / (r * r), in.h * r, in.w * r);
}

Shape shape_interp(const ShapeContext& x) {
  const Shape& in = x.in[0];
  x.need_image(in);
  const InterpParams& p = x.op.get<InterpParams>();
  int64_t oh = p.output_height, ow = p.output_width;
  if (oh == 0 || ow == 0) {
    // In double, and compared before the conversion: h * 1e30 is beyond any integer.
    const double h = in.h * double(p.height_scale), w = in.w * double(p.width_scale);
    if (!(h <= kMaxShapeSide && w <= kMaxShapeSide)) {
      char text[128];
      std::snprintf(text, sizeof text, "scaled by %g x %g gives %gx%g", p.height_scale,
                    p.width_scale, h, w);
      throw x.fail("output size out of range: input " + x.in_text() + " " + text +
                   " (at most " + std::to_string(kMaxShapeSide) + " a side)");
    }
    oh = int64_t(h);
    ow = int64_t(w);
  }
  return x.checked(3, in.c, oh, ow);
}

Shape shape_binaryop(const ShapeContext& x) {
  if (x.op.get<BinaryParams>().with_scalar) return x.in[0];
  const Shape &a = x.in[0], &b = x.in[1];
  auto per_channel = [](const Shape& img, const Shape& v) {
    return img.dims == 3 && ((v.dims == 1 && v.w == img.c) ||
                             (v.dims == 3 && v.c == img.c && v.h == 1 && v.w == 1));
  };
  auto scalar = [](const Shape& v) { return v.elements() == 1; };
  if (a == b || per_channel(a, b) || scalar(b)) return a;
  if (per_channel(b, a) || scalar(a)) return b;
  throw x.fail("cannot broadcast " + ShapeContext::text(a) + " with " + ShapeContext::text(b));
}

Shape shape_eltwise(const ShapeContext& x) {
  for (const Shape& s : x.in)
    if (!(s == x.in[0]))
      throw x.fail("inputs differ in shape: " + ShapeContext::text(x.in[0]) + " and " +
                   ShapeContext::text(s));
  return x.in[0];
}

Shape shape_concat(const ShapeContext& x) {
  const Shape& first = x.in[0];
  const int concat_axis = x.op.get<ConcatParams>().axis;
  const int axis = concat_axis < 0 ? concat_axis + first.dims : concat_axis;
  if (first.dims != 3 || axis != 0) throw x.fail("only channel concatenation of images is supported");
  int64_t channels = 0;
  for (const Shape& s : x.in) {
    if (s.dims != 3 || s.h != first.h || s.w != first.w)
      throw x.fail("inputs differ in size: " + ShapeContext::text(first) + " and " +
                   ShapeContext::text(s));
    channels += s.c;
  }
  return x.checked(3, channels, first.h, first.w);
}

Shape shape_crop(const ShapeContext& x) {
  const Shape& in = x.in[0];
  CropRegion r = resolve_crop(x.op.get<CropParams>(), in, x.in.size() > 1 ? &x.in[1] : nullptr);
  if (r.out.w <= 0 || r.out.h <= 0 || r.out.c <= 0 || r.woffset < 0 || r.hoffset < 0 ||
      r.coffset < 0 || int64_t(r.woffset) + r.out.w > in.w ||
      int64_t(r.hoffset) + r.out.h > in.h || int64_t(r.coffset) + r.out.c > in.c)
    throw x.fail("crop region lies outside the input " + ShapeContext::text(in));
  return r.out;
}

Shape shape_padding(const ShapeContext& x) {
  const Shape& in = x.in[0];
  x.need_image(in);
  const PaddingParams& p = x.op.get<PaddingParams>();
  const Shape out =
      x.checked(3, in.c, int64_t(in.h) + p.top + p.bottom, int64_t(in.w) + p.left + p.right);
  if (p.type == PaddingType::kReflect &&
      (p.top >= in.h || p.bottom >= in.h || p.left >= in.w || p.right >= in.w))
    throw x.fail("reflect padding wider than the input");
  return out;
}

Shape shape_pooling(const ShapeContext& x) {
  x.need_image(x.in[0]);
  return {1, 1, 1, x.in[0].c};
}

Shape shape_innerproduct(const ShapeContext& x) {
  const InnerProductParams& p = x.op.get<InnerProductParams>();
  size_t inputs = p.weights.size() / p.num_output;
  if (x.in[0].elements() != inputs)
    throw x.fail("weights expect " + std::to_string(inputs) + " inputs, got " +
                 ShapeContext::text(x.in[0]));
  return {1, 1, 1, p.num_output};
}

}  // namespace

const std::map<std::string, LayerParser>& layer_parsers() {
  static const std::map<std::string, LayerParser> parsers = {
      {"Input", {OpType::kInput, parse_input, shape_input}},
      {"Split", {OpType::kSplit, parse_split, shape_same}},
      {"Convolution", {OpType::kConvolution, parse_conv<false, false>, shape_conv, load_conv}},
      {"ConvolutionDepthWise",
       {OpType::kConvolution, parse_conv<false, true>, shape_conv, load_conv}},
      {"Deconvolution", {OpType::kDeconvolution, parse_conv<true, false>, shape_conv, load_conv}},
      {"DeconvolutionDepthWise",
       {OpType::kDeconvolution, parse_conv<true, true>, shape_conv, load_conv}},
      {"PReLU", {OpType::kPReLU, parse_prelu, shape_prelu, load_prelu}},
      {"ReLU", {OpType::kReLU, parse_relu, shape_same}},
      {"Sigmoid", {OpType::kSigmoid, parse_sigmoid, shape_same}},
      {"Mish", {OpType::kMish, parse_mish, shape_same}},
      {"GroupNorm", {OpType::kGroupNorm, parse_groupnorm, shape_norm, load_norm}},
      {"LayerNorm", {OpType::kLayerNorm, parse_layernorm, shape_norm, load_norm}},
      {"DySample", {OpType::kDySample, parse_dysample, shape_dysample}},
      {"PixelShuffle", {OpType::kPixelShuffle, parse_pixelshuffle, shape_pixelshuffle}},
      {"Interp", {OpType::kInterp, parse_interp, shape_interp}},
      {"BinaryOp", {OpType::kBinaryOp, parse_binaryop, shape_binaryop}},
      {"Eltwise", {OpType::kEltwise, parse_eltwise, shape_eltwise}},
      {"Concat", {OpType::kConcat, parse_concat, shape_concat}},
      {"Crop", {OpType::kCrop, parse_crop, shape_crop}},
      {"Padding", {OpType::kPadding, parse_padding, shape_padding}},
      {"Pooling", {OpType::kPooling, parse_pooling, shape_pooling}},
      {"InnerProduct",
       {OpType::kInnerProduct, parse_innerproduct, shape_innerproduct, load_innerproduct}},
  };
  return parsers;
}

}  // namespace upframe::nn::ncnn

namespace upframe::nn {

ShapeFunction op_shape_function(OpType type) {
  // Indexed by OpType, from the parser table (the types ncnn reads under two names share one).
  static const std::array<ShapeFunction, kOpTypeCount> functions = [] {
    std::array<ShapeFunction, kOpTypeCount> table{};
    for (const auto& [name, parser] : ncnn::layer_parsers()) {
      ShapeFunction& entry = table[size_t(parser.type)];
      if (entry && entry != parser.shape)
        throw std::logic_error("layer " + name + ": a second shape function for its op type");
      entry = parser.shape;
    }
    for (ShapeFunction f : table)
      if (!f) throw std::logic_error("an op type without a shape function");
    return table;
  }();
  return functions[size_t(type)];
}

}  // namespace upframe::nn
