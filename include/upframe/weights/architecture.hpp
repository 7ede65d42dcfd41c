// Which network a state dict describes, found from its key names and tensor shapes alone (a
// .pth or .safetensors file holds weights, not the graph), and the network written out as an
// ncnn graph that upframe's ncnn reader loads like any shipped model.
#pragma once

#include <string>
#include <vector>

#include "upframe/weights/state_dict.hpp"

namespace upframe::weights {

struct Architecture {
  // "ESRGAN", "Compact", or the name of a family recognised but not built ("SPAN", "HAT", ...);
  // "unknown" when nothing matched.
  std::string family;
  bool supported = false;
  std::string unsupported_reason;  // when !supported
  int scale = 0;
  int input_channels = 0;
  int output_channels = 0;
  int features = 0;    // width of the feature maps
  int blocks = 0;      // RRDB blocks (ESRGAN), body convolutions (Compact), PLK blocks
  int growth = 0;      // ESRGAN: channels each dense layer adds
  int unshuffle = 1;   // ESRGAN x1/x2: the input is pixel-unshuffled by this factor first
  std::string activation;  // "PReLU", "LeakyReLU(0.2)"
  std::string key_style;   // ESRGAN: "new" (conv_first/body/...) or "old" (model.N)
  bool normalised_input = false;  // SPAN without `no_norm`: (x - mean) * 255 first
  bool pro = false;               // Real-CUGAN "pro" models (a `pro` buffer): x * 0.7 + 0.15 in
  // RealPLKSR: the large kernel's size, the channels it convolves (the first ones), the
  // block's norm ("GroupNorm(4)" after the block, "LayerNorm" before it) and whether the
  // element-wise attention (EA) is there.
  int large_kernel = 0;
  int large_kernel_channels = 0;
  std::string norm;
  bool attention = false;
  std::string upsampler;     // RealPLKSR: "PixelShuffle" or "DySample"
  int upsampler_groups = 0;  // DySample's groups
};

// Never throws for an unknown layout: `family` is "unknown" then.
Architecture recognise_architecture(const StateDict& dict);

// The network as ncnn .param text and .bin bytes (fp32 weights). Throws upframe::Error naming
// `file` where a tensor the family needs is missing or has the wrong shape.
struct NcnnNetwork {
  std::string param_text;
  std::string bin;
  std::vector<std::string> op_types;  // one per layer, in order (for model-info)
};
NcnnNetwork build_ncnn_network(const StateDict& dict, const Architecture& arch,
                               const std::string& file);

}  // namespace upframe::weights
