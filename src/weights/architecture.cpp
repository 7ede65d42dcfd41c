// Families recognised from state-dict keys, after the published definitions:
// - ESRGAN / RRDBNet (ESRGAN's original `model.N` keys and BasicSR's `conv_first`/`body.N.rdbK`
//   keys): conv_first, num_block RRDBs of three residual dense blocks (five 3x3 convolutions,
//   each seeing the concatenation of all before it, LeakyReLU 0.2; out = x5 * 0.2 + x), conv_body
//   added to conv_first's output, then per x2 a nearest upsample and a convolution with
//   LeakyReLU, conv_hr with LeakyReLU, conv_last.
// - Compact / SRVGGNetCompact (`body.N`): 3x3 convolutions at even indices, PReLU at odd ones,
//   the last convolution giving out_channels * scale^2 channels, a pixel shuffle, plus the
//   input upsampled by nearest neighbour.
// - SPAN (`conv_1`, `block_1..6.c1_r/c2_r/c3_r`, `conv_cat`, `conv_2`, `upsampler.0`): every
//   Conv3XC layer runs, in eval mode, as one 3x3 convolution folded from its 1x1 shortcut and
//   1x1 -> 3x3 -> 1x1 chain (the builder folds them; a stored `eval_conv` is not read).
// - Real-CUGAN UpCunet2x/3x/4x (`unet1.*`, `unet2.*`, x4 `conv_final`): two U-Nets of unpadded
//   convolutions with squeeze-excitation blocks; the scale from unet1's last deconvolution.
// - RealPLKSR (neosr's and spandrel's RealPLKSR, after dslisleedh's PLKSR; `feats.N`): a 3x3
//   convolution, blocks, a Dropout2d (no weights: identity in eval), a 3x3 convolution to
//   out_channels * scale^2; plus the input with each channel repeated scale^2 times, pixel
//   shuffled. A block: [channels-first LayerNorm, eps 1e-6,] 3x3 conv to 2*dim, Mish, 3x3 conv
//   back to dim, a kxk conv on the first pdim channels only, [x * sigmoid(3x3 conv(x)),] a 1x1
//   conv, [GroupNorm(4 groups, eps 1e-5), when there is no LayerNorm,] plus the block's input.
//   With `to_img.*` the pixel shuffle is DySample's instead: offsets = 1x1 conv(x) *
//   sigmoid(1x1 conv(x)) * 0.5 + init_pos, x sampled bilinearly there (grid_sample,
//   align_corners=False, border), then a 1x1 conv (end_conv) when the scale is not 1.
#include "upframe/weights/architecture.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>

#include "esrgan_keys.hpp"
#include "upframe/error.hpp"

namespace upframe::weights {

namespace {

bool has(const StateDict& d, const std::string& key) { return d.find(key) != nullptr; }

bool any_key(const StateDict& d, std::string_view part) {
  return std::any_of(d.tensors.begin(), d.tensors.end(),
                     [&](const auto& t) { return t.first.find(part) != std::string::npos; });
}

// The integer N of keys PREFIX.N.REST (PREFIX "body" gives every N of "body.N.*").
std::set<int> indices(const StateDict& d, const std::string& prefix) {
  std::set<int> out;
  for (const auto& [key, tensor] : d.tensors) {
    if (key.compare(0, prefix.size() + 1, prefix + ".") != 0) continue;
    size_t i = prefix.size() + 1, j = i;
    while (j < key.size() && std::isdigit(static_cast<unsigned char>(key[j]))) ++j;
    if (j > i && j < key.size() && key[j] == '.' && j - i < 6) out.insert(std::stoi(key.substr(i, j - i)));
  }
  return out;
}

int dim(const Tensor* t, size_t i) {
  return t && t->shape.size() > i ? static_cast<int>(t->shape[i]) : 0;
}

Architecture unsupported(std::string family, std::string reason) {
  Architecture a;
  a.family = std::move(family);
  a.unsupported_reason = std::move(reason);
  return a;
}

Architecture recognise_esrgan(const StateDict& d) {
  Architecture a;
  a.family = "ESRGAN";
  a.key_style = "new";
  a.activation = "LeakyReLU(0.2)";
  auto tensor = [&](const std::string& name) { return d.find(name + ".weight"); };
  const Tensor* first = tensor("conv_first");
  const Tensor* last = tensor("conv_last");
  if (!first || !last) return unsupported("ESRGAN", "conv_first or conv_last is missing");
  a.features = dim(first, 0);
  a.output_channels = dim(last, 0);
  a.blocks = static_cast<int>(indices(d, "body").size());
  a.growth = dim(tensor("body.0.rdb1.conv1"), 0);
  int ups = 0;
  while (tensor("conv_up" + std::to_string(ups + 1))) ++ups;
  const int first_in = dim(first, 1);
  // Real-ESRGAN's x2 and x1 models pixel-unshuffle the input by 2 or 4 before conv_first.
  a.input_channels = a.output_channels;
  for (int f : {1, 2, 4})
    if (first_in == a.output_channels * f * f) a.unshuffle = f;
  if (a.output_channels <= 0 || first_in != a.output_channels * a.unshuffle * a.unshuffle) {
    a.input_channels = first_in;
    a.unshuffle = 1;
  }
  a.scale = (1 << ups) / a.unshuffle;
  if (a.blocks <= 0 || a.growth <= 0 || a.features <= 0)
    return unsupported("ESRGAN", "its RRDB blocks could not be read");
  a.supported = true;
  return a;
}

Architecture recognise_compact(const StateDict& d) {
  Architecture a;
  a.family = "Compact";
  const std::set<int> body = indices(d, "body");
  const int last = *body.rbegin();
  const Tensor* first = d.find("body.0.weight");
  const Tensor* out = d.find("body." + std::to_string(last) + ".weight");
  a.input_channels = dim(first, 1);
  a.features = dim(first, 0);
  a.blocks = last / 2 - 1;  // convolutions between the first and the last
  a.output_channels = a.input_channels;
  const int out_ch = dim(out, 0);
  const int s2 = a.output_channels > 0 ? out_ch / a.output_channels : 0;
  a.scale = static_cast<int>(std::lround(std::sqrt(std::max(s2, 0))));
  if (last % 2 != 0 || a.scale <= 0 || a.scale * a.scale * a.output_channels != out_ch)
    return unsupported("Compact", "its body layers do not form an SRVGGNetCompact");
  const Tensor* act = d.find("body.1.weight");
  if (!act || act->shape.size() != 1) {
    // ReLU and LeakyReLU hold no weights, so the file cannot say which one was trained.
    a.unsupported_reason =
        "Compact without PReLU weights: its activation (ReLU or LeakyReLU) is not in the file";
    return a;
  }
  a.activation = "PReLU";
  a.supported = true;
  return a;
}

Architecture recognise_span(const StateDict& d) {
  Architecture a;
  a.family = "SPAN";
  a.activation = "SiLU";
  const Tensor* first = d.find("conv_1.sk.weight");
  const Tensor* up = d.find("upsampler.0.weight");
  a.features = dim(first, 0);
  a.input_channels = dim(first, 1);
  a.blocks = 0;
  while (has(d, "block_" + std::to_string(a.blocks + 1) + ".c1_r.sk.weight")) ++a.blocks;
  if (a.features <= 0 || dim(up, 1) != a.features)
    return unsupported("SPAN", "conv_1 or upsampler.0 is missing or does not match");
  // The published network has six blocks and concatenates the first block's output and the
  // sixth's first convolution: another count has no known wiring.
  if (a.blocks != 6)
    return unsupported("SPAN", std::to_string(a.blocks) + " blocks (the published SPAN has 6)");
  // Output channels: the input's if the upsampler's count is that times a square, else 3 or 1.
  const int up_channels = dim(up, 0);
  for (int out : {a.input_channels, 3, 1}) {
    const int s = static_cast<int>(std::lround(std::sqrt(double(up_channels) / out)));
    if (s >= 1 && s * s * out == up_channels) {
      a.output_channels = out;
      a.scale = s;
      break;
    }
  }
  if (a.scale <= 0) return unsupported("SPAN", "the upsampler's channels give no whole scale");
  a.normalised_input = !has(d, "no_norm");
  if (a.normalised_input && a.input_channels != 3)
    return unsupported("SPAN", "its input normalisation (an RGB mean) needs 3 input channels");
  a.supported = true;
  return a;
}

Architecture recognise_real_cugan(const StateDict& d) {
  Architecture a;
  a.family = "Real-CUGAN";
  a.activation = "LeakyReLU(0.1)";
  const Tensor* first = d.find("unet1.conv1.conv.0.weight");
  const Tensor* bottom = d.find("unet1.conv_bottom.weight");  // ConvTranspose2d: (in, out, k, k)
  a.input_channels = dim(first, 1);
  a.features = dim(d.find("unet1.conv1.conv.2.weight"), 0);
  a.output_channels = a.input_channels;
  if (a.input_channels == 12)
    return unsupported("Real-CUGAN", "the fast x2 model (pixel-unshuffled input) is not supported");
  // x2: a 4x4 stride-2 deconvolution to the output channels; x3: 5x5 stride 3; x4: a 4x4 one
  // to features, then conv_final (12 = 3 * 2 * 2 channels) and a pixel shuffle.
  if (has(d, "conv_final.weight") && dim(bottom, 2) == 4 &&
      dim(d.find("conv_final.weight"), 0) == a.output_channels * 4)
    a.scale = 4;
  else if (dim(bottom, 2) == 4 && dim(bottom, 1) == a.output_channels)
    a.scale = 2;
  else if (dim(bottom, 2) == 5 && dim(bottom, 1) == a.output_channels)
    a.scale = 3;
  if (a.scale == 0 || a.input_channels <= 0 || a.features <= 0)
    return unsupported("Real-CUGAN", "its unet1.conv_bottom does not match UpCunet2x, 3x or 4x");
  a.pro = has(d, "pro");
  a.supported = true;
  return a;
}

Architecture recognise_realplksr(const StateDict& d) {
  Architecture a;
  a.family = "RealPLKSR";
  const Tensor* first = d.find("feats.0.weight");
  const std::set<int> feats = indices(d, "feats");
  const int last = *feats.rbegin();
  const Tensor* out = d.find("feats." + std::to_string(last) + ".weight");
  const Tensor* lk = d.find("feats.1.lk.conv.weight");
  a.input_channels = dim(first, 1);
  a.features = dim(first, 0);
  a.output_channels = a.input_channels;
  a.blocks = last - 2;  // the blocks, then the Dropout2d, then the last convolution
  for (int b = 1; b <= a.blocks; ++b)
    if (!has(d, "feats." + std::to_string(b) + ".refine.weight"))
      return unsupported("RealPLKSR", "block feats." + std::to_string(b) + " is missing");
  const int out_ch = dim(out, 0);
  const int s2 = a.output_channels > 0 ? out_ch / a.output_channels : 0;
  a.scale = static_cast<int>(std::lround(std::sqrt(std::max(s2, 0))));
  if (a.blocks < 1 || a.scale < 1 || a.scale * a.scale * a.output_channels != out_ch || !lk)
    return unsupported("RealPLKSR", "its feats layers do not form a RealPLKSR");
  a.large_kernel = dim(lk, 2);
  a.large_kernel_channels = dim(lk, 0);
  a.attention = has(d, "feats.1.attn.f.0.weight");
  const bool layer_norm = has(d, "feats.1.layer_norm.weight");
  a.norm = layer_norm ? "LayerNorm" : "GroupNorm(4)";
  a.activation = "Mish";
  a.upsampler = has(d, "to_img.init_pos") ? "DySample" : "PixelShuffle";
  if (a.upsampler == "DySample") {
    const Tensor* offset = d.find("to_img.offset.weight");
    const int s2 = a.scale * a.scale;
    a.upsampler_groups = dim(offset, 0) / (2 * s2);
    if (!offset || a.upsampler_groups < 1 || dim(offset, 0) != 2 * s2 * a.upsampler_groups ||
        dim(offset, 1) != out_ch || out_ch % a.upsampler_groups != 0 ||
        (a.scale != 1) != has(d, "to_img.end_conv.weight") ||
        dim(d.find("to_img.init_pos"), 1) != dim(offset, 0))
      return unsupported("RealPLKSR", "its DySample upsampler (to_img.*) has unexpected shapes");
  }
  if (!layer_norm && (!has(d, "feats.1.norm.weight") || a.features % 4 != 0))
    return unsupported("RealPLKSR", "its blocks have neither a LayerNorm nor a 4-group GroupNorm");
  if (a.large_kernel % 2 == 0 || a.large_kernel_channels > a.features)
    return unsupported("RealPLKSR",
                       "its large-kernel convolution is not an odd square kernel "
                       "on some of the channels");
  a.supported = true;
  return a;
}

}  // namespace

StateDict esrgan_with_new_keys(const StateDict& d) {
  // model.0 conv_first; model.1 the trunk (model.1.sub.B.RDBr.convc.0 the dense layers,
  // model.1.sub.N conv_body); then the convolutions in index order: the upsampling ones, conv_hr,
  // conv_last (activations and upsamplers hold no weights but take indices).
  std::vector<int> tail;
  for (int i : indices(d, "model"))
    if (i >= 2) tail.push_back(i);
  const int blocks = static_cast<int>(indices(d, "model.1.sub").size()) - 1;
  std::map<std::string, std::string> to_new = {{"model.0", "conv_first"}};
  for (int b = 0; b < blocks; ++b)
    for (int r = 1; r <= 3; ++r)
      for (int c = 1; c <= 5; ++c)
        to_new["model.1.sub." + std::to_string(b) + ".RDB" + std::to_string(r) + ".conv" +
               std::to_string(c) + ".0"] = "body." + std::to_string(b) + ".rdb" +
                                           std::to_string(r) + ".conv" + std::to_string(c);
  if (blocks >= 0) to_new["model.1.sub." + std::to_string(blocks)] = "conv_body";
  for (size_t u = 0; u + 2 < tail.size(); ++u)
    to_new["model." + std::to_string(tail[u])] = "conv_up" + std::to_string(u + 1);
  if (tail.size() >= 2) {
    to_new["model." + std::to_string(tail[tail.size() - 2])] = "conv_hr";
    to_new["model." + std::to_string(tail.back())] = "conv_last";
  }
  StateDict out;
  out.format = d.format;
  out.wrapper = d.wrapper;
  for (const auto& [key, tensor] : d.tensors) {
    const size_t dot = key.rfind('.');
    auto it = dot == std::string::npos ? to_new.end() : to_new.find(key.substr(0, dot));
    if (it != to_new.end()) out.tensors.emplace_back(it->second + key.substr(dot), tensor);
  }
  return out;
}

Architecture recognise_architecture(const StateDict& d) {
  // Families named so a user learns what the file is, though upframe does not run them.
  if (any_key(d, "relative_position_bias_table"))
    return unsupported(any_key(d, "overlap_attn") ? "HAT" : "SwinIR",
                       "transformer networks are not supported");
  if (any_key(d, ".attn.attns.") || has(d, "before_RG.0.weight"))
    return unsupported("DAT", "transformer networks are not supported");
  // Families built (their recognisers may still refuse a variant, naming it).
  if (has(d, "unet1.conv1.conv.0.weight")) return recognise_real_cugan(d);
  if (any_key(d, "block_1.c1_r.") && has(d, "conv_cat.weight")) return recognise_span(d);
  if (has(d, "feats.0.weight") && any_key(d, ".lk.")) {
    // dslisleedh's original PLKSR spells its mixer "channe_mixer"; RealPLKSR "channel_mixer".
    if (any_key(d, ".channe_mixer."))
      return unsupported("PLKSR", "the original PLKSR is not supported yet (RealPLKSR is)");
    return recognise_realplksr(d);
  }
  if (has(d, "conv_first.weight") && has(d, "body.0.rdb1.conv1.weight"))
    return recognise_esrgan(d);
  if (has(d, "model.0.weight") && has(d, "model.1.sub.0.RDB1.conv1.0.weight")) {
    Architecture a = recognise_esrgan(esrgan_with_new_keys(d));
    a.key_style = "old";
    return a;
  }
  if (has(d, "body.0.weight") && dim(d.find("body.0.weight"), 2) == 3)
    return recognise_compact(d);
  return unsupported("unknown", "unknown architecture");
}

}  // namespace upframe::weights
