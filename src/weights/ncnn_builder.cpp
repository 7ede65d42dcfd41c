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
  if (arch.family == "RealPLKSR") return build_realplksr(dict, arch, file);
  throw Error(file, "no builder for the " + arch.family + " family", ExitCode::kUsage);
}

}  // namespace upframe::weights
