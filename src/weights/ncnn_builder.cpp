// A recognised state dict written as an ncnn graph: .param text (ncnn's layer types and
// parameter ids, the format upframe's reader already checks) and a .bin of fp32 weights in layer
// order. Blobs read by more than one layer get the Split layer ncnn's format expects.
#include <cstring>
#include <map>
#include <sstream>

#include "esrgan_keys.hpp"
#include "upframe/error.hpp"
#include "upframe/weights/architecture.hpp"

namespace upframe::weights {

namespace {

class NcnnWriter {
 public:
  explicit NcnnWriter(std::string file) : file_(std::move(file)) {}

  std::string input(int channels) {
    return add("Input", {}, "0=0 1=0 2=" + std::to_string(channels), "data");
  }

  // A 3x3 (or `kernel`) convolution from `weight_key`'s weights and bias, padding kernel/2.
  // `leaky` > 0 fuses a LeakyReLU of that slope.
  std::string conv(const std::string& in, const StateDict& d, const std::string& key,
                   int in_channels, float leaky = 0, int kernel = 3) {
    const Tensor* w = d.find(key + ".weight");
    const Tensor* b = d.find(key + ".bias");
    if (!w || w->shape.size() != 4 || w->shape[1] != in_channels || w->shape[2] != kernel ||
        w->shape[3] != kernel)
      throw Error(file_, "tensor " + key + ".weight is missing or not a " +
                             std::to_string(kernel) + "x" + std::to_string(kernel) +
                             " convolution from " + std::to_string(in_channels) + " channels");
    const int64_t out = w->shape[0];
    if (b && (b->shape.size() != 1 || b->shape[0] != out))
      throw Error(file_, "tensor " + key + ".bias does not match its weights");
    std::string params = "0=" + std::to_string(out) + " 1=" + std::to_string(kernel) +
                         " 4=" + std::to_string(kernel / 2) + " 5=" + (b ? "1" : "0") +
                         " 6=" + std::to_string(w->values.size());
    if (leaky > 0) params += " 9=2 -23310=1," + number(leaky);
    const uint32_t fp32_flag = 0;
    bin_.append(reinterpret_cast<const char*>(&fp32_flag), 4);
    append(w->values);
    if (b) append(b->values);
    return add("Convolution", {in}, params);
  }

  std::string prelu(const std::string& in, const Tensor& slopes) {
    append(slopes.values);
    return add("PReLU", {in}, "0=" + std::to_string(slopes.values.size()));
  }
  std::string concat(const std::vector<std::string>& in) { return add("Concat", in, ""); }
  std::string reflect_pad_end(const std::string& in, int rows) {
    return add("Padding", {in}, "0=0 1=" + std::to_string(rows) + " 2=0 3=" +
                                    std::to_string(rows) + " 4=2");
  }
  // PyTorch's pixel_unshuffle (out channel c*f*f + dy*f + dx) as a stride-f convolution.
  std::string pixel_unshuffle(const std::string& in, int channels, int f) {
    const int out = channels * f * f;
    std::vector<float> weights(static_cast<size_t>(out) * channels * f * f, 0.f);
    for (int c = 0; c < channels; ++c)
      for (int dy = 0; dy < f; ++dy)
        for (int dx = 0; dx < f; ++dx) {
          const int o = c * f * f + dy * f + dx;
          weights[((static_cast<size_t>(o) * channels + c) * f + dy) * f + dx] = 1.f;
        }
    const uint32_t fp32_flag = 0;
    bin_.append(reinterpret_cast<const char*>(&fp32_flag), 4);
    append(weights);
    return add("Convolution", {in},
               "0=" + std::to_string(out) + " 1=" + std::to_string(f) + " 3=" +
                   std::to_string(f) + " 4=0 5=0 6=" + std::to_string(weights.size()));
  }
  // `in` cropped from its top left to the width and height of `reference`.
  std::string crop_to(const std::string& in, const std::string& reference) {
    return add("Crop", {in, reference}, "");
  }
  // a * ca + b * cb
  std::string weighted_sum(const std::string& a, const std::string& b, float ca, float cb) {
    return add("Eltwise", {a, b}, "0=1 -23301=2," + number(ca) + "," + number(cb));
  }
  std::string add_blobs(const std::string& a, const std::string& b) {
    return add("BinaryOp", {a, b}, "0=0");
  }
  std::string nearest(const std::string& in, int scale) {
    return add("Interp", {in}, "0=1 1=" + number(float(scale)) + " 2=" + number(float(scale)));
  }
  std::string pixel_shuffle(const std::string& in, int scale) {
    return add("PixelShuffle", {in}, "0=" + std::to_string(scale));
  }

  NcnnNetwork finish(const std::string& output) {
    // Rename the output blob "output" and give every blob read more than once a Split.
    std::map<std::string, int> reads;
    for (const Layer& l : layers_)
      for (const std::string& in : l.inputs) ++reads[in];
    std::vector<Layer> final_layers;
    std::map<std::string, std::vector<std::string>> split_names;  // blob -> its copies
    for (Layer l : layers_) {
      for (std::string& in : l.inputs) {
        auto it = split_names.find(in);
        if (it != split_names.end()) {
          in = it->second.back();
          it->second.pop_back();
        }
      }
      for (std::string& out : l.outputs)
        if (out == output) out = "output";
      final_layers.push_back(l);
      for (const std::string& out : l.outputs) {
        const int n = reads[out];
        if (n < 2) continue;
        Layer split{"Split", "split_" + out, {out}, {}, ""};
        for (int i = 0; i < n; ++i) split.outputs.push_back(out + "_" + std::to_string(i));
        split_names[out] = split.outputs;
        final_layers.push_back(split);
      }
    }
    size_t blobs = 0;
    std::ostringstream text;
    for (const Layer& l : final_layers) blobs += l.outputs.size();
    text << "7767517\n" << final_layers.size() << ' ' << blobs << '\n';
    NcnnNetwork net;
    for (const Layer& l : final_layers) {
      text << l.type << ' ' << l.name << ' ' << l.inputs.size() << ' ' << l.outputs.size();
      for (const std::string& b : l.inputs) text << ' ' << b;
      for (const std::string& b : l.outputs) text << ' ' << b;
      if (!l.params.empty()) text << ' ' << l.params;
      text << '\n';
      net.op_types.push_back(l.type);
    }
    net.param_text = text.str();
    net.bin = std::move(bin_);
    return net;
  }

 private:
  struct Layer {
    std::string type, name;
    std::vector<std::string> inputs, outputs;
    std::string params;
  };

  static std::string number(float v) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.9e", static_cast<double>(v));
    return buf;
  }
  void append(const std::vector<float>& values) {
    bin_.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
  }
  std::string add(const std::string& type, std::vector<std::string> inputs, std::string params,
                  std::string out = {}) {
    if (out.empty()) out = "b" + std::to_string(layers_.size());
    layers_.push_back({type, type + "_" + std::to_string(layers_.size()), std::move(inputs),
                       {out}, std::move(params)});
    return out;
  }

  std::string file_;
  std::vector<Layer> layers_;
  std::string bin_;
};

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

}  // namespace

NcnnNetwork build_ncnn_network(const StateDict& dict, const Architecture& arch,
                               const std::string& file) {
  if (!arch.supported)
    throw Error(file, arch.family + " network: " + arch.unsupported_reason, ExitCode::kUsage);
  if (arch.family == "ESRGAN") return build_esrgan(dict, arch, file);
  if (arch.family == "Compact") return build_compact(dict, arch, file);
  throw Error(file, "no builder for the " + arch.family + " family", ExitCode::kUsage);
}

}  // namespace upframe::weights
