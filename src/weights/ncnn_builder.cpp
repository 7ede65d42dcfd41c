// A recognised state dict written as an ncnn graph: .param text (ncnn's layer types and
// parameter ids, the format upframe's reader already checks) and a .bin of fp32 weights in layer
// order. Blobs read by more than one layer get the Split layer ncnn's format expects.
#include <cstring>
#include <map>
#include <sstream>

#include "esrgan_keys.hpp"
#include "ncnn_writer.hpp"
#include "upframe/error.hpp"
#include "upframe/weights/architecture.hpp"

namespace upframe::weights {

namespace {

NcnnNetwork build_esrgan(const StateDict& original, const Architecture& a,
                         const std::string& file) {
  // ESRGAN's original keys are renamed to BasicSR's first, so one builder serves both.
  StateDict renamed;
  const StateDict* d = &original;
  if (a.key_style == "old") {
    renamed = esrgan_with_new_keys(original);
    d = &renamed;
  }
  NcnnWriter w(file);
  const int nf = a.features, gc = a.growth, f = a.unshuffle;
  const std::string input = w.input(a.input_channels);
  std::string features_in = input;
  if (f > 1) {
    // Real-ESRGAN's x2/x1 models pixel-unshuffle first and its inference pads the image by
    // reflection to a multiple of f: reflect f-1 rows and columns (a stride-f convolution
    // reads exactly the ones a multiple needs), then a stride-f convolution with one-hot
    // weights (exact in fp32) as the unshuffle; the output is cropped back below.
    features_in = w.pixel_unshuffle(w.reflect_pad_end(input, f - 1), a.input_channels, f);
  }
  const std::string first =
      w.conv(features_in, *d, "conv_first", a.input_channels * f * f);
  std::string x = first;
  for (int b = 0; b < a.blocks; ++b) {
    const std::string block_in = x;
    for (int r = 1; r <= 3; ++r) {
      const std::string prefix = "body." + std::to_string(b) + ".rdb" + std::to_string(r);
      std::vector<std::string> seen = {x};
      for (int c = 1; c <= 4; ++c) {
        const std::string cat = seen.size() == 1 ? x : w.concat(seen);
        seen.push_back(w.conv(cat, *d, prefix + ".conv" + std::to_string(c), nf + (c - 1) * gc,
                              0.2f));
      }
      const std::string x5 = w.conv(w.concat(seen), *d, prefix + ".conv5", nf + 4 * gc);
      x = w.weighted_sum(x5, x, 0.2f, 1.0f);
    }
    x = w.weighted_sum(x, block_in, 0.2f, 1.0f);
  }
  std::string feat = w.add_blobs(first, w.conv(x, *d, "conv_body", nf));
  for (int u = 1; (1 << (u - 1)) < a.scale * a.unshuffle; ++u)
    feat = w.conv(w.nearest(feat, 2), *d, "conv_up" + std::to_string(u), nf, 0.2f);
  const std::string hr = w.conv(feat, *d, "conv_hr", nf, 0.2f);
  const std::string last = w.conv(hr, *d, "conv_last", nf);
  if (f == 1) return w.finish(last);
  // Back to scale x the input's size, from the top left (the padding was at the end).
  const std::string size_of = a.scale == 1 ? input : w.nearest(input, a.scale);
  return w.finish(w.crop_to(last, size_of));
}

NcnnNetwork build_compact(const StateDict& d, const Architecture& a, const std::string& file) {
  NcnnWriter w(file);
  const std::string input = w.input(a.input_channels);
  std::string x = input;
  int in_channels = a.input_channels;
  const int convs = a.blocks + 2;
  for (int i = 0; i < convs; ++i) {
    const std::string key = "body." + std::to_string(2 * i);
    x = w.conv(x, d, key, in_channels);
    in_channels = a.features;
    if (i + 1 == convs) break;
    const Tensor* slopes = d.find("body." + std::to_string(2 * i + 1) + ".weight");
    if (!slopes || slopes->shape.size() != 1 || slopes->shape[0] != a.features)
      throw Error(file, "tensor body." + std::to_string(2 * i + 1) +
                            ".weight is missing or not a PReLU of " +
                            std::to_string(a.features) + " channels");
    x = w.prelu(x, *slopes);
  }
  const std::string shuffled = w.pixel_shuffle(x, a.scale);
  return w.finish(w.add_blobs(shuffled, w.nearest(input, a.scale)));
}

// --- SPAN ------------------------------------------------------------------------------------

const Tensor& need(const StateDict& d, const std::string& key, size_t rank,
                   const std::string& file) {
  const Tensor* t = d.find(key);
  if (!t || t->shape.size() != rank)
    throw Error(file, "tensor " + key + " is missing or not of rank " + std::to_string(rank));
  return *t;
}

// One of SPAN's Conv3XC layers as the single padded 3x3 convolution PyTorch runs in eval mode
// (update_params before every forward): conv.0 (1x1) then conv.1 (3x3, unpadded) then conv.2
// (1x1) composed into one kernel and bias, plus the 1x1 shortcut `sk` at the centre tap.
// Composed in double; the stored eval_conv weights are not read (a file may hold stale ones).
std::string span_conv3xc(NcnnWriter& w, const std::string& in, const StateDict& d,
                         const std::string& prefix, int in_channels, const std::string& file) {
  const Tensor& w0 = need(d, prefix + ".conv.0.weight", 4, file);
  const Tensor& w1 = need(d, prefix + ".conv.1.weight", 4, file);
  const Tensor& w2 = need(d, prefix + ".conv.2.weight", 4, file);
  const Tensor& sk = need(d, prefix + ".sk.weight", 4, file);
  const int64_t m0 = w0.shape[0], m1 = w1.shape[0], out = w2.shape[0];
  if (w0.shape[1] != in_channels || w0.shape[2] != 1 || w1.shape[1] != m0 || w1.shape[2] != 3 ||
      w1.shape[3] != 3 || w2.shape[1] != m1 || w2.shape[2] != 1 || sk.shape[0] != out ||
      sk.shape[1] != in_channels || sk.shape[2] != 1)
    throw Error(file, "the shapes of " + prefix + " do not form a Conv3XC layer from " +
                          std::to_string(in_channels) + " channels");
  auto bias_of = [&](const std::string& key, int64_t n) {
    std::vector<double> b(n, 0.0);
    if (const Tensor* t = d.find(key + ".bias")) {
      if (t->shape.size() != 1 || t->shape[0] != n)
        throw Error(file, "tensor " + key + ".bias does not match its weights");
      for (int64_t i = 0; i < n; ++i) b[i] = t->values[i];
    }
    return b;
  };
  const std::vector<double> b0 = bias_of(prefix + ".conv.0", m0),
                            b1 = bias_of(prefix + ".conv.1", m1),
                            b2 = bias_of(prefix + ".conv.2", out),
                            bsk = bias_of(prefix + ".sk", out);
  // k1[m1][i][t] = sum_m0 w1[m1][m0][t] * w0[m0][i]; c1[m1] = sum_{m0,t} w1[m1][m0][t] b0[m0] + b1
  const int64_t cin = in_channels;
  std::vector<double> k1(m1 * cin * 9, 0.0), c1(b1);
  for (int64_t a = 0; a < m1; ++a)
    for (int64_t m = 0; m < m0; ++m)
      for (int t = 0; t < 9; ++t) {
        const double v = w1.values[(a * m0 + m) * 9 + t];
        c1[a] += v * b0[m];
        for (int64_t i = 0; i < cin; ++i) k1[(a * cin + i) * 9 + t] += v * w0.values[m * cin + i];
      }
  std::vector<float> weights(out * cin * 9), bias(out);
  for (int64_t o = 0; o < out; ++o) {
    double b = b2[o] + bsk[o];
    for (int64_t a = 0; a < m1; ++a) b += double(w2.values[o * m1 + a]) * c1[a];
    bias[o] = static_cast<float>(b);
    for (int64_t i = 0; i < cin; ++i)
      for (int t = 0; t < 9; ++t) {
        double v = t == 4 ? double(sk.values[o * cin + i]) : 0.0;
        for (int64_t a = 0; a < m1; ++a)
          v += double(w2.values[o * m1 + a]) * k1[(a * cin + i) * 9 + t];
        weights[(o * cin + i) * 9 + t] = static_cast<float>(v);
      }
  }
  return w.conv_values(in, weights, bias, static_cast<int>(out), 3, 1, 1);
}

// x * sigmoid(x)
std::string silu(NcnnWriter& w, const std::string& x) { return w.binary(x, w.sigmoid(x), 2); }

NcnnNetwork build_span(const StateDict& d, const Architecture& a, const std::string& file) {
  NcnnWriter w(file);
  const int nf = a.features;
  const std::string input = w.input(a.input_channels);
  std::string x = input;
  if (a.normalised_input) {
    // (x - mean) * 255 with the published DIV2K mean, per channel: a 1x1 depthwise convolution.
    const float mean[3] = {0.4488f, 0.4371f, 0.4040f};
    std::vector<float> bias;
    for (float m : mean) bias.push_back(-m * 255.f);
    x = w.conv_values(x, {255.f, 255.f, 255.f}, bias, 3, 1, 1, 0, 0, 3);
  }
  const std::string feature = span_conv3xc(w, x, d, "conv_1", a.input_channels, file);
  std::string out = feature, first_block_out, last_block_out1;
  for (int b = 1; b <= a.blocks; ++b) {
    const std::string prefix = "block_" + std::to_string(b);
    const std::string out1 = span_conv3xc(w, out, d, prefix + ".c1_r", nf, file);
    const std::string out2 = span_conv3xc(w, silu(w, out1), d, prefix + ".c2_r", nf, file);
    const std::string out3 = span_conv3xc(w, silu(w, out2), d, prefix + ".c3_r", nf, file);
    const std::string attention = w.binary_scalar(w.sigmoid(out3), 1, 0.5f);
    out = w.binary(w.add_blobs(out3, out), attention, 2);
    if (b == 1) first_block_out = out;
    if (b == a.blocks) last_block_out1 = out1;
  }
  const std::string last = span_conv3xc(w, out, d, "conv_2", nf, file);
  const std::string cat = w.conv(w.concat({feature, last, first_block_out, last_block_out1}), d,
                                 "conv_cat", 4 * nf, 0, 1);
  return w.finish(w.pixel_shuffle(w.conv(cat, d, "upsampler.0", nf), a.scale));
}

// --- Real-CUGAN ------------------------------------------------------------------------------

constexpr float kCuganSlope = 0.1f;

// An unpadded convolution (3x3, or 2x2 stride 2 for `*_down`), LeakyReLU(0.1) fused if `leaky`.
std::string cugan_conv(NcnnWriter& w, const std::string& in, const StateDict& d,
                       const std::string& key, bool leaky, const std::string& file) {
  const Tensor& weight = need(d, key + ".weight", 4, file);
  const Tensor* bias = d.find(key + ".bias");
  const int kernel = static_cast<int>(weight.shape[2]);
  if (weight.shape[3] != kernel || (bias && bias->values.size() != size_t(weight.shape[0])))
    throw Error(file, "tensor " + key + " is not a square convolution with its bias");
  return w.conv_values(in, weight.values, bias ? bias->values : std::vector<float>{},
                       static_cast<int>(weight.shape[0]), kernel, kernel == 2 ? 2 : 1, 0,
                       leaky ? kCuganSlope : 0.f);
}

std::string cugan_deconv(NcnnWriter& w, const std::string& in, const StateDict& d,
                         const std::string& key, int stride, int pad, bool leaky,
                         const std::string& file) {
  return w.deconv(in, need(d, key + ".weight", 4, file), d.find(key + ".bias"), stride, pad,
                  leaky ? kCuganSlope : 0.f);
}

// UNetConv: two unpadded 3x3 convolutions with LeakyReLU, then the squeeze-excitation block
// (global mean, 1x1 + ReLU, 1x1 + sigmoid, times the input) where the file has one.
std::string cugan_unet_conv(NcnnWriter& w, const std::string& in, const StateDict& d,
                            const std::string& prefix, const std::string& file) {
  std::string x = cugan_conv(w, in, d, prefix + ".conv.0", true, file);
  x = cugan_conv(w, x, d, prefix + ".conv.2", true, file);
  if (!d.find(prefix + ".seblock.conv1.weight")) return x;
  const std::string se = prefix + ".seblock.conv";
  std::string s = w.global_average(x);
  s = w.inner_product(s, need(d, se + "1.weight", 4, file), d.find(se + "1.bias"), 1);
  s = w.inner_product(s, need(d, se + "2.weight", 4, file), d.find(se + "2.bias"), 4);
  return w.binary(x, s, 2);
}

// UNet1: `bottom_stride`/`bottom_pad` 2/3 (x2, x4) or 3/2 (x3) for its last deconvolution.
std::string cugan_unet1(NcnnWriter& w, const std::string& in, const StateDict& d, int bottom_stride,
                        int bottom_pad, const std::string& file) {
  const std::string x1 = cugan_unet_conv(w, in, d, "unet1.conv1", file);
  std::string x2 = cugan_conv(w, x1, d, "unet1.conv1_down", true, file);
  x2 = cugan_unet_conv(w, x2, d, "unet1.conv2", file);
  x2 = cugan_deconv(w, x2, d, "unet1.conv2_up", 2, 0, true, file);
  const std::string x3 =
      cugan_conv(w, w.add_blobs(w.crop_border(x1, 4), x2), d, "unet1.conv3", true, file);
  return cugan_deconv(w, x3, d, "unet1.conv_bottom", bottom_stride, bottom_pad, false, file);
}

std::string cugan_unet2(NcnnWriter& w, const std::string& in, const StateDict& d,
                        const std::string& file) {
  const std::string x1 = cugan_unet_conv(w, in, d, "unet2.conv1", file);
  std::string x2 = cugan_conv(w, x1, d, "unet2.conv1_down", true, file);
  x2 = cugan_unet_conv(w, x2, d, "unet2.conv2", file);
  std::string x3 = cugan_conv(w, x2, d, "unet2.conv2_down", true, file);
  x3 = cugan_unet_conv(w, x3, d, "unet2.conv3", file);
  x3 = cugan_deconv(w, x3, d, "unet2.conv3_up", 2, 0, true, file);
  std::string x4 =
      cugan_unet_conv(w, w.add_blobs(w.crop_border(x2, 4), x3), d, "unet2.conv4", file);
  x4 = cugan_deconv(w, x4, d, "unet2.conv4_up", 2, 0, true, file);
  const std::string x5 =
      cugan_conv(w, w.add_blobs(w.crop_border(x1, 16), x4), d, "unet2.conv5", true, file);
  return cugan_conv(w, x5, d, "unet2.conv_bottom", false, file);
}

NcnnNetwork build_real_cugan(const StateDict& d, const Architecture& a, const std::string& file) {
  NcnnWriter w(file);
  const int channels = a.input_channels;
  const std::string input = w.input(channels);
  std::string x = input;
  if (a.pro) {  // pro models take x * 0.7 + 0.15 and give back (y - 0.15) / 0.7
    x = w.conv_values(x, std::vector<float>(channels, 0.7f), std::vector<float>(channels, 0.15f),
                      channels, 1, 1, 0, 0, channels);
  }
  const std::string unpadded = x;
  // The authors' forward pads by reflection: `border` each side plus what makes the size a
  // multiple of `multiple` (so the strided layers' halves line up). The padded size depends on the
  // input's, so reflect the most it can need, then crop to the size of a reference blob made
  // ceil(size / multiple) * multiple + 2 * border by a stride-`multiple` convolution (zero
  // weights: only its shape is used) and a nearest upsampling.
  const int multiple = a.scale == 3 ? 4 : 2, border = a.scale == 3 ? 14 : a.scale == 4 ? 19 : 18;
  const std::string padded =
      w.pad(x, border, border + multiple - 1, border, border + multiple - 1, 2);
  const std::string cells =
      w.conv_values(w.pad(x, 0, multiple - 1, 0, multiple - 1, 0),
                    std::vector<float>(size_t(channels) * multiple * multiple, 0.f), {}, channels,
                    multiple, multiple, 0, 0, channels);
  const std::string reference =
      w.pad(w.nearest(cells, multiple), border, border, border, border, 0);
  x = w.crop_to(padded, reference);
  const std::string u1 =
      a.scale == 3 ? cugan_unet1(w, x, d, 3, 2, file) : cugan_unet1(w, x, d, 2, 3, file);
  std::string y = w.add_blobs(cugan_unet2(w, u1, d, file), w.crop_border(u1, 20));
  if (a.scale == 4) {
    y = cugan_conv(w, y, d, "conv_final", false, file);
    y = w.pixel_shuffle(w.crop_border(y, 1), 2);
  }
  // Back to scale x the input's size, from the top left.
  const std::string upsampled = w.nearest(unpadded, a.scale);
  y = w.crop_to(y, upsampled);
  if (a.scale == 4) y = w.add_blobs(y, upsampled);
  if (a.pro)
    y = w.conv_values(y, std::vector<float>(channels, 1.f / 0.7f),
                      std::vector<float>(channels, -0.15f / 0.7f), channels, 1, 1, 0, 0, channels);
  return w.finish(y);
}

// --- RealPLKSR -------------------------------------------------------------------------------

constexpr int kSigmoid = 4, kMish = 5;  // ncnn's fused activation ids (param 9)

NcnnNetwork build_realplksr(const StateDict& d, const Architecture& a, const std::string& file) {
  NcnnWriter w(file);
  const int dim = a.features, pdim = a.large_kernel_channels;
  const std::string input = w.input(a.input_channels);
  std::string x = w.conv(input, d, "feats.0", a.input_channels);
  for (int b = 1; b <= a.blocks; ++b) {
    const std::string block = "feats." + std::to_string(b) + ".";
    std::string h = x;
    if (a.norm == "LayerNorm") h = w.channel_layer_norm(h, d, block + "layer_norm", 1e-6f);
    h = w.conv_with_activation(h, d, block + "channel_mixer.0", dim, 3, kMish);
    h = w.conv(h, d, block + "channel_mixer.2", 2 * dim);
    // The large kernel on the first pdim channels; the others pass through.
    const std::string partial =
        w.conv(w.crop_channels(h, 0, pdim), d, block + "lk.conv", pdim, 0, a.large_kernel);
    h = pdim == dim ? partial : w.concat({partial, w.crop_channels(h, pdim, dim - pdim)});
    if (a.attention)
      h = w.multiply_blobs(h, w.conv_with_activation(h, d, block + "attn.f.0", dim, 3, kSigmoid));
    h = w.conv(h, d, block + "refine", dim, 0, 1);
    if (a.norm != "LayerNorm") h = w.group_norm(h, d, block + "norm", 4, 1e-5f);
    x = w.add_blobs(h, x);
  }
  const std::string features = w.conv(x, d, "feats." + std::to_string(a.blocks + 2), dim);
  const int s2 = a.scale * a.scale;
  const std::string repeated = w.repeat_channels(input, a.input_channels, s2);
  const std::string sum = w.add_blobs(features, repeated);
  if (a.upsampler != "DySample") return w.finish(w.pixel_shuffle(sum, a.scale));
  // offsets = offset(x) * sigmoid(scope(x)) * 0.5 + init_pos, the 0.5 folded into the offset
  // convolution's weights and bias (exact: a power of two).
  const int channels = a.output_channels * s2;
  StateDict halved;
  for (const char* part : {".weight", ".bias"}) {
    const Tensor* t = d.find(std::string("to_img.offset") + part);
    if (!t) continue;
    Tensor half = *t;
    for (float& v : half.values) v *= 0.5f;
    halved.tensors.emplace_back(std::string("to_img.offset") + part, std::move(half));
  }
  const std::string offset = w.conv(sum, halved, "to_img.offset", channels, 0, 1);
  const std::string scope = w.conv_with_activation(sum, d, "to_img.scope", channels, 1, kSigmoid);
  const std::string offsets =
      w.add_channel_constants(w.multiply_blobs(offset, scope), d.find("to_img.init_pos")->values);
  const std::string sampled = w.dysample(sum, offsets, a.scale, a.upsampler_groups);
  if (a.scale == 1) return w.finish(sampled);
  return w.finish(w.conv(sampled, d, "to_img.end_conv", channels, 0, 1));
}

}  // namespace

NcnnNetwork build_ncnn_network(const StateDict& dict, const Architecture& arch,
                               const std::string& file) {
  if (!arch.supported)
    throw Error(file, arch.family + " network: " + arch.unsupported_reason, ExitCode::kUsage);
  if (arch.family == "ESRGAN") return build_esrgan(dict, arch, file);
  if (arch.family == "Compact") return build_compact(dict, arch, file);
  if (arch.family == "SPAN") return build_span(dict, arch, file);
  if (arch.family == "Real-CUGAN") return build_real_cugan(dict, arch, file);
  if (arch.family == "RealPLKSR") return build_realplksr(dict, arch, file);
  throw Error(file, "no builder for the " + arch.family + " family", ExitCode::kUsage);
}

}  // namespace upframe::weights
