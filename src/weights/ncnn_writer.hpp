// Writes an ncnn graph (.param text and .bin bytes) layer by layer, for networks built from
// weight files (ncnn_builder.cpp) and ONNX graphs (onnx_import.cpp). Blobs read by more than one
// layer get the Split layer ncnn's format expects when the text is finished.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "upframe/error.hpp"
#include "upframe/weights/architecture.hpp"

namespace upframe::weights {

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
    return conv_activated(in, d, key, in_channels, kernel,
                          leaky > 0 ? "9=2 -23310=1," + number(leaky) : "");
  }
  // The same with ncnn's fused activation `activation` (param 9: 4 Sigmoid, 5 Mish).
  std::string conv_with_activation(const std::string& in, const StateDict& d,
                                   const std::string& key, int in_channels, int kernel,
                                   int activation) {
    return conv_activated(in, d, key, in_channels, kernel, "9=" + std::to_string(activation));
  }

  // The channels [first, first + count) of `in`.
  std::string crop_channels(const std::string& in, int first, int count) {
    return add("Crop", {in}, "2=" + std::to_string(first) + " 5=" + std::to_string(count));
  }
  // Each of `channels` channels repeated `times` times in place (torch.repeat_interleave on
  // dim 1), as a 1x1 convolution with one-hot weights (exact in fp32).
  std::string repeat_channels(const std::string& in, int channels, int times) {
    const int out = channels * times;
    std::vector<float> weights(static_cast<size_t>(out) * channels, 0.f);
    for (int o = 0; o < out; ++o) weights[static_cast<size_t>(o) * channels + o / times] = 1.f;
    weights_fp32_flagged(weights);
    return add("Convolution", {in},
               "0=" + std::to_string(out) + " 1=1 5=0 6=" + std::to_string(weights.size()));
  }
  // GroupNorm (ncnn's layer) or LayerNorm over the channels of each pixel (upframe's form,
  // param 3=1) with `key`'s weight and bias as gamma and beta.
  std::string group_norm(const std::string& in, const StateDict& d, const std::string& key,
                         int groups, float eps) {
    const int channels = norm_weights(d, key);
    return add("GroupNorm", {in},
               "0=" + std::to_string(groups) + " 1=" + std::to_string(channels) +
                   " 2=" + number(eps) + " 3=1");
  }
  std::string channel_layer_norm(const std::string& in, const StateDict& d, const std::string& key,
                                 float eps) {
    const int channels = norm_weights(d, key);
    return add("LayerNorm", {in},
               "0=" + std::to_string(channels) + " 1=" + number(eps) + " 2=1 3=1");
  }
  // `values[c]` added to channel c: a 1x1 depthwise convolution of weight 1 (exact).
  std::string add_channel_constants(const std::string& in, const std::vector<float>& values) {
    const std::string c = std::to_string(values.size());
    weights_fp32_flagged(std::vector<float>(values.size(), 1.f));
    append(values);
    return add("ConvolutionDepthWise", {in}, "0=" + c + " 1=1 5=1 6=" + c + " 7=" + c);
  }
  // upframe's DySample layer (nn/ops.hpp): `image` sampled at `offsets`.
  std::string dysample(const std::string& image, const std::string& offsets, int scale,
                       int groups) {
    return add("DySample", {image, offsets},
               "0=" + std::to_string(scale) + " 1=" + std::to_string(groups));
  }
  std::string multiply_blobs(const std::string& a, const std::string& b) {
    return add("BinaryOp", {a, b}, "0=2");
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
  // PyTorch's pixel_unshuffle (out channel c*f*f + dy*f + dx) as a stride-f convolution; with
  // `space_to_depth_order`, ONNX SpaceToDepth's (out channel (dy*f + dx)*channels + c).
  std::string pixel_unshuffle(const std::string& in, int channels, int f,
                              bool space_to_depth_order = false) {
    const int out = channels * f * f;
    std::vector<float> weights(static_cast<size_t>(out) * channels * f * f, 0.f);
    for (int c = 0; c < channels; ++c)
      for (int dy = 0; dy < f; ++dy)
        for (int dx = 0; dx < f; ++dx) {
          const int o =
              space_to_depth_order ? (dy * f + dx) * channels + c : c * f * f + dy * f + dx;
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

  // A convolution of weights already in memory ([out][in / groups][k][k]) and `bias` (empty:
  // none), with explicit padding (0 for the unpadded ones) and stride; `leaky` as in conv().
  std::string conv_values(const std::string& in, const std::vector<float>& weights,
                          const std::vector<float>& bias, int out, int kernel, int stride, int pad,
                          float leaky = 0, int groups = 1) {
    std::string params = "0=" + std::to_string(out) + " 1=" + std::to_string(kernel) +
                         " 3=" + std::to_string(stride) + " 4=" + std::to_string(pad) +
                         " 5=" + (bias.empty() ? "0" : "1") +
                         " 6=" + std::to_string(weights.size());
    if (groups > 1) params += " 7=" + std::to_string(groups);
    if (leaky > 0) params += " 9=2 -23310=1," + number(leaky);
    weights_fp32_flagged(weights);
    append(bias);
    return add(groups > 1 ? "ConvolutionDepthWise" : "Convolution", {in}, params);
  }
  // PyTorch's ConvTranspose2d (weights [in][out][k][k]) as ncnn's Deconvolution ([out][in]).
  std::string deconv(const std::string& in, const Tensor& w, const Tensor* bias, int stride,
                     int pad, float leaky = 0) {
    const int64_t cin = w.shape[0], cout = w.shape[1], kk = w.shape[2] * w.shape[3];
    std::vector<float> transposed(w.values.size());
    for (int64_t i = 0; i < cin; ++i)
      for (int64_t o = 0; o < cout; ++o)
        for (int64_t k = 0; k < kk; ++k)
          transposed[(o * cin + i) * kk + k] = w.values[(i * cout + o) * kk + k];
    std::string params = "0=" + std::to_string(cout) + " 1=" + std::to_string(w.shape[2]) +
                         " 3=" + std::to_string(stride) + " 4=" + std::to_string(pad) +
                         " 5=" + (bias ? "1" : "0") + " 6=" + std::to_string(transposed.size());
    if (leaky > 0) params += " 9=2 -23310=1," + number(leaky);
    weights_fp32_flagged(transposed);
    if (bias) append(bias->values);
    return add("Deconvolution", {in}, params);
  }
  // A fully connected layer on a vector (a 1x1 convolution after global pooling); activation
  // 0 none, 1 ReLU, 4 sigmoid (ncnn's param 9).
  std::string inner_product(const std::string& in, const Tensor& w, const Tensor* bias,
                            int activation) {
    std::string params = "0=" + std::to_string(w.shape[0]) + " 1=" + (bias ? "1" : "0") +
                         " 2=" + std::to_string(w.values.size());
    if (activation != 0) params += " 9=" + std::to_string(activation);
    weights_fp32_flagged(w.values);
    if (bias) append(bias->values);
    return add("InnerProduct", {in}, params);
  }
  std::string global_average(const std::string& in) { return add("Pooling", {in}, "0=1 4=1"); }
  std::string sigmoid(const std::string& in) { return add("Sigmoid", {in}, ""); }
  // ncnn BinaryOp kinds: 0 add, 1 sub, 2 mul (a vector operand is broadcast over channels).
  std::string binary(const std::string& a, const std::string& b, int kind) {
    return add("BinaryOp", {a, b}, "0=" + std::to_string(kind));
  }
  std::string binary_scalar(const std::string& a, int kind, float scalar) {
    return add("BinaryOp", {a}, "0=" + std::to_string(kind) + " 1=1 2=" + number(scalar));
  }
  // `border` pixels off every side (height and width).
  std::string crop_border(const std::string& in, int border) {
    const std::string b = std::to_string(border);
    return add("Crop", {in},
               "-23309=2," + b + "," + b + " -23310=2,-" + b + ",-" + b + " -23311=2,-2,-1");
  }
  // Padding of each side; `type` 0 constant zero, 2 reflect.
  std::string pad(const std::string& in, int top, int bottom, int left, int right, int type) {
    return add("Padding", {in},
               "0=" + std::to_string(top) + " 1=" + std::to_string(bottom) +
                   " 2=" + std::to_string(left) + " 3=" + std::to_string(right) +
                   " 4=" + std::to_string(type));
  }

  // Any layer: `params` in ncnn's "id=value" form; its weights appended with weights_*().
  std::string layer(const std::string& type, std::vector<std::string> inputs, std::string params) {
    return add(type, std::move(inputs), std::move(params));
  }
  void weights_fp32_flagged(const std::vector<float>& values) {
    const uint32_t fp32_flag = 0;
    bin_.append(reinterpret_cast<const char*>(&fp32_flag), 4);
    append(values);
  }
  void weights_raw(const std::vector<float>& values) { append(values); }
  static std::string number(float v) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.9e", static_cast<double>(v));
    return buf;
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

  std::string conv_activated(const std::string& in, const StateDict& d, const std::string& key,
                             int in_channels, int kernel, const std::string& activation) {
    const Tensor* w = d.find(key + ".weight");
    const Tensor* b = d.find(key + ".bias");
    if (!w || w->shape.size() != 4 || w->shape[1] != in_channels || w->shape[2] != kernel ||
        w->shape[3] != kernel)
      throw Error(file_, "tensor " + key + ".weight is missing or not a " + std::to_string(kernel) +
                             "x" + std::to_string(kernel) + " convolution from " +
                             std::to_string(in_channels) + " channels");
    const int64_t out = w->shape[0];
    if (b && (b->shape.size() != 1 || b->shape[0] != out))
      throw Error(file_, "tensor " + key + ".bias does not match its weights");
    std::string params = "0=" + std::to_string(out) + " 1=" + std::to_string(kernel) +
                         " 4=" + std::to_string(kernel / 2) + " 5=" + (b ? "1" : "0") +
                         " 6=" + std::to_string(w->values.size());
    if (!activation.empty()) params += " " + activation;
    weights_fp32_flagged(w->values);
    if (b) append(b->values);
    return add("Convolution", {in}, params);
  }

  // Appends `key`.weight and `key`.bias (one value per channel each); returns the channels.
  int norm_weights(const StateDict& d, const std::string& key) {
    const Tensor* w = d.find(key + ".weight");
    const Tensor* b = d.find(key + ".bias");
    if (!w || !b || w->shape.size() != 1 || b->shape != w->shape)
      throw Error(file_, "tensors " + key +
                             ".weight and .bias are missing or not one value per "
                             "channel");
    append(w->values);
    append(b->values);
    return static_cast<int>(w->shape[0]);
  }

  void append(const std::vector<float>& values) {
    bin_.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
  }
  std::string add(const std::string& type, std::vector<std::string> inputs, std::string params,
                  std::string out = {}) {
    // Appended, not "b" + std::to_string(...): GCC 12 warns (-Wrestrict, falsely) on that form.
    if (out.empty()) out.append("b").append(std::to_string(layers_.size()));
    layers_.push_back({type, type + "_" + std::to_string(layers_.size()), std::move(inputs),
                       {out}, std::move(params)});
    return out;
  }

  std::string file_;
  std::vector<Layer> layers_;
  std::string bin_;
};

}  // namespace upframe::weights
