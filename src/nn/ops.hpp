// The op catalogue of the graph: each op type with its own typed parameters (ncnn's layer
// types, as the reader gives them). Adding an op: docs/ARCHITECTURE.md, "Adding an op".
#pragma once

#include <string>
#include <variant>
#include <vector>

namespace upframe::nn {

enum class OpType {
  kInput,
  kSplit,
  kConvolution,  // also ConvolutionDepthWise (groups > 1)
  kDeconvolution,
  kPReLU,
  kReLU,  // slope != 0: LeakyReLU
  kSigmoid,
  kPixelShuffle,
  kInterp,
  kBinaryOp,
  kEltwise,
  kConcat,
  kCrop,
  kPadding,
  kPooling,
  kInnerProduct,
  kMish,
  kGroupNorm,
  kLayerNorm,  // over the channels of each pixel (upframe's form, see NormParams)
  kDySample,   // upframe's: DySample's learned resampling (see DySampleParams)
};
// Entries of the per-backend op tables (indexed by OpType).
inline constexpr int kOpTypeCount = int(OpType::kDySample) + 1;
inline const char* op_type_name(OpType type) {
  switch (type) {
    case OpType::kInput:
      return "Input";
    case OpType::kSplit:
      return "Split";
    case OpType::kConvolution:
      return "Convolution";
    case OpType::kDeconvolution:
      return "Deconvolution";
    case OpType::kPReLU:
      return "PReLU";
    case OpType::kReLU:
      return "ReLU";
    case OpType::kSigmoid:
      return "Sigmoid";
    case OpType::kPixelShuffle:
      return "PixelShuffle";
    case OpType::kInterp:
      return "Interp";
    case OpType::kBinaryOp:
      return "BinaryOp";
    case OpType::kEltwise:
      return "Eltwise";
    case OpType::kConcat:
      return "Concat";
    case OpType::kCrop:
      return "Crop";
    case OpType::kPadding:
      return "Padding";
    case OpType::kPooling:
      return "Pooling";
    case OpType::kInnerProduct:
      return "InnerProduct";
    case OpType::kMish:
      return "Mish";
    case OpType::kGroupNorm:
      return "GroupNorm";
    case OpType::kLayerNorm:
      return "LayerNorm";
    case OpType::kDySample:
      return "DySample";
  }
  return "?";
}

// ncnn's fused activation (param 9 of Convolution/Deconvolution/InnerProduct); kPReLU is ours:
// a following PReLU layer folded into the convolution by Graph::simplify().
enum class Activation {
  kNone = 0,
  kReLU = 1,
  kLeakyReLU = 2,
  kClip = 3,
  kSigmoid = 4,
  kMish = 5,  // x * tanh(softplus(x))
  kPReLU = 100
};

struct ActivationSpec {
  Activation type = Activation::kNone;
  float alpha = 0.f;  // LeakyReLU slope, Clip min
  float beta = 0.f;   // Clip max
  std::vector<float> prelu_slopes;
};

struct InputParams {
  int channels = 0;  // the declared channel count (0: unknown)
};

struct SplitParams {};

// Convolution and Deconvolution (and their depthwise forms).
struct ConvParams {
  int num_output = 0;
  int kernel_w = 0, kernel_h = 0;
  int dilation_w = 1, dilation_h = 1;
  int stride_w = 1, stride_h = 1;
  int pad_left = 0, pad_right = 0, pad_top = 0, pad_bottom = 0;  // -233/-234: SAME upper/lower
  int groups = 1;
  int output_pad_right = 0, output_pad_bottom = 0;  // Deconvolution only
  int output_w = 0, output_h = 0;                   // Deconvolution only
  bool bias_term = false;
  ActivationSpec activation;
  // Convolution: [out][in/groups][kh][kw]; Deconvolution: [out/groups][in/groups][kh][kw]
  // per group (ncnn's order; the kernel is applied as a scatter, not flipped).
  std::vector<float> weights;
  std::vector<float> bias;
};

struct PReLUParams {
  std::vector<float> slopes;  // one per channel, or one shared
};

struct ReLUParams {
  float slope = 0.f;  // non-zero: LeakyReLU
};

struct SigmoidParams {};

// Which input channel feeds output channel p's sub-pixel (i, j) of an r x r block.
enum class PixelShuffleMode {
  kPyTorch = 0,      // pixel_shuffle order: p*r*r + i*r + j
  kDepthToSpace = 1  // DCR: (i*r + j)*out_channels + p
};

struct PixelShuffleParams {
  int factor = 1;
  PixelShuffleMode mode = PixelShuffleMode::kPyTorch;
};

enum class ResizeType { kNearest = 1, kBilinear = 2, kBicubic = 3 };

struct InterpParams {
  ResizeType resize_type = ResizeType::kNearest;
  float height_scale = 1.f, width_scale = 1.f;
  int output_height = 0, output_width = 0;
};

enum class BinaryKind { kAdd = 0, kSub, kMul, kDiv, kMax, kMin, kPow, kRSub, kRDiv };

struct BinaryParams {
  BinaryKind kind = BinaryKind::kAdd;
  bool with_scalar = false;
  float scalar = 0.f;
};

enum class EltwiseKind { kProduct = 0, kSum = 1, kMax = 2 };

struct EltwiseParams {
  EltwiseKind kind = EltwiseKind::kSum;
  std::vector<float> coefficients;  // kSum only; empty: all 1
};

struct ConcatParams {
  int axis = 0;
};

struct CropParams {
  int woffset = 0, hoffset = 0, coffset = 0;
  int outw = 0, outh = 0, outc = 0;
  int woffset2 = 0, hoffset2 = 0, coffset2 = 0;
  std::vector<int> starts, ends, axes;  // numpy-style slice (-23309/-23310/-23311)
};

enum class PaddingType { kConstant = 0, kReplicate = 1, kReflect = 2 };

struct PaddingParams {
  int top = 0, bottom = 0, left = 0, right = 0;
  PaddingType type = PaddingType::kConstant;
  float value = 0.f;  // kConstant
};

enum class PoolingKind { kMax = 0, kAverage = 1 };

struct PoolingParams {
  PoolingKind kind = PoolingKind::kMax;
  bool global = false;
};

struct InnerProductParams {
  int num_output = 0;
  bool bias_term = false;
  ActivationSpec activation;
  std::vector<float> weights;  // [num_output][inputs]
  std::vector<float> bias;
};

struct MishParams {};

// GroupNorm (ncnn's): per group of channels/groups channels, normalised over those channels and
// every pixel: (x - mean) / sqrt(var + eps), var biased, then gamma[c] * x + beta[c].
// LayerNorm (upframe's form: ncnn's normalises rows or planes): per pixel, normalised over all
// channels, the same formula; `groups` is 1.
struct NormParams {
  int groups = 1;
  int channels = 0;
  float eps = 1e-5f;
  bool affine = true;
  std::vector<float> gamma, beta;  // `channels` each when affine
};

// DySample's upsampling by `scale` (RealPLKSR's to_img): inputs an image of C channels and its
// offsets, 2 * groups * scale^2 channels of the same size (x offsets, then y offsets; in each,
// group g's sub-pixel k = i * scale + j at channel g * scale^2 + k). Output pixel (Y, X) of
// channel c (group c / (C / groups)) is the image sampled bilinearly at input pixel
// (Y / scale + y offset, X / scale + x offset), the offsets read at (Y / scale, X / scale),
// positions clamped to the image (PyTorch's grid_sample, align_corners=False, border padding).
struct DySampleParams {
  int scale = 2;
  int groups = 1;
};

// One alternative per op type (Convolution and Deconvolution share ConvParams, GroupNorm and
// LayerNorm NormParams).
using OpParams = std::variant<InputParams, SplitParams, ConvParams, PReLUParams, ReLUParams,
                              SigmoidParams, PixelShuffleParams, InterpParams, BinaryParams,
                              EltwiseParams, ConcatParams, CropParams, PaddingParams, PoolingParams,
                              InnerProductParams, MishParams, NormParams, DySampleParams>;

struct Op {
  OpType type = OpType::kInput;
  std::string name;
  int line = 0;              // in the .param file, for error messages
  std::vector<int> inputs;   // blob indices
  std::vector<int> outputs;  // blob indices
  OpParams params;

  // The op's parameters; P must be its type's (std::bad_variant_access otherwise).
  template <class P>
  const P& get() const {
    return std::get<P>(params);
  }
  template <class P>
  P& get() {
    return std::get<P>(params);
  }
};

// True for the standalone activation layers: PReLU, ReLU (LeakyReLU with a slope), Sigmoid,
// Mish.
bool is_activation(OpType type);
// What such a layer applies, as the activation a convolution can carry fused (ReLU with slope 0
// is kReLU, with another slope kLeakyReLU).
ActivationSpec activation_of(const Op& op);

}  // namespace upframe::nn
