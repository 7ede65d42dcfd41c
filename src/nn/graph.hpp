// The backend-independent form of an ncnn model: typed ops with their parameters and weights
// (fp32), named blobs, shape inference, the receptive-field walk and a buffer plan.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
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
};
const char* op_type_name(OpType type);

// ncnn's fused activation (param 9 of Convolution/Deconvolution/InnerProduct); kPReLU is ours:
// a following PReLU layer folded into the convolution by Graph::simplify().
enum class Activation {
  kNone = 0,
  kReLU = 1,
  kLeakyReLU = 2,
  kClip = 3,
  kSigmoid = 4,
  kPReLU = 100
};

struct ActivationSpec {
  Activation type = Activation::kNone;
  float alpha = 0.f;  // LeakyReLU slope, Clip min
  float beta = 0.f;   // Clip max
  std::vector<float> prelu_slopes;
};

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

struct InterpParams {
  int resize_type = 0;  // 1 nearest, 2 bilinear, 3 bicubic
  float height_scale = 1.f, width_scale = 1.f;
  int output_height = 0, output_width = 0;
};

enum class BinaryKind { kAdd = 0, kSub, kMul, kDiv, kMax, kMin, kPow, kRSub, kRDiv };

struct BinaryParams {
  BinaryKind kind = BinaryKind::kAdd;
  bool with_scalar = false;
  float scalar = 0.f;
};

struct EltwiseParams {
  int kind = 1;  // 0 product, 1 sum, 2 max
  std::vector<float> coefficients;
};

struct CropParams {
  int woffset = 0, hoffset = 0, coffset = 0;
  int outw = 0, outh = 0, outc = 0;
  int woffset2 = 0, hoffset2 = 0, coffset2 = 0;
  std::vector<int> starts, ends, axes;  // numpy-style slice (-23309/-23310/-23311)
};

struct PaddingParams {
  int top = 0, bottom = 0, left = 0, right = 0;
  int type = 0;  // 0 constant, 1 replicate, 2 reflect
  float value = 0.f;
};

struct PoolingParams {
  int kind = 0;  // 0 max, 1 average
  bool global = false;
};

struct InnerProductParams {
  int num_output = 0;
  bool bias_term = false;
  ActivationSpec activation;
  std::vector<float> weights;  // [num_output][inputs]
  std::vector<float> bias;
};

struct Op {
  OpType type = OpType::kInput;
  std::string name;
  int line = 0;               // in the .param file, for error messages
  std::vector<int> inputs;    // blob indices
  std::vector<int> outputs;   // blob indices
  int input_channels = 0;     // Input layer's declared channel count (0: unknown)
  ConvParams conv;            // Convolution, Deconvolution
  std::vector<float> slopes;  // PReLU (size 1: shared)
  float relu_slope = 0.f;     // ReLU
  int upscale_factor = 1;     // PixelShuffle
  int pixelshuffle_mode = 0;  // 0: PyTorch pixel_shuffle order, 1: depth-to-space DCR
  InterpParams interp;
  BinaryParams binary;
  EltwiseParams eltwise;
  int concat_axis = 0;
  CropParams crop;
  PaddingParams padding;
  PoolingParams pooling;
  InnerProductParams inner;
};

// True for the standalone activation layers: PReLU, ReLU (LeakyReLU with a slope), Sigmoid.
bool is_activation(OpType type);
// What such a layer applies, as the activation a convolution can carry fused (ReLU with slope 0
// is kReLU, with another slope kLeakyReLU).
ActivationSpec activation_of(const Op& op);

// Limits on every blob shape, checked by Graph::infer_shapes (the input included): each side
// (channels, height, width; a vector's length) at most kMaxShapeSide, and at most
// kMaxShapeElements values per blob. Beyond them a shape is a corrupt model (or a nonsense
// input size), not an image: they keep all shape arithmetic far from int overflow. The
// element limit (64 GiB of fp32) is above what a 4K frame sent untiled (--tile 0) through a
// x4 model needs (64 channels at 15360x8640: 8.5e9 values), so no real use hits it.
constexpr int kMaxShapeSide = 1 << 20;
constexpr int64_t kMaxShapeElements = int64_t(1) << 34;

// ncnn blob shape: dims 3 (c, h, w) for images; dims 1 (w values, c = h = 1) for vectors.
struct Shape {
  int dims = 3;
  int c = 0, h = 0, w = 0;
  size_t elements() const { return size_t(c) * h * w; }
  bool operator==(const Shape&) const = default;
};

struct ConvPads {
  int left, right, top, bottom;
};
// The explicit padding of a convolution for an input size (resolves ncnn's SAME -233/-234).
// For sizes and kernels within the shape limits (infer_shapes checks them first); beyond them
// the SAME pads saturate at INT_MAX instead of overflowing.
ConvPads resolve_conv_pads(const ConvParams& conv, int in_h, int in_w);

struct CropRegion {
  int coffset, hoffset, woffset;
  Shape out;
};
// Offsets and sizes that do not fit an int saturate (they stay out of the input's range, so
// infer_shapes still rejects them).
CropRegion resolve_crop(const CropParams& crop, const Shape& in, const Shape* reference);

class Graph {
 public:
  std::string param_path;  // for error messages
  std::vector<Op> ops;     // topological order
  std::vector<std::string> blob_names;
  int input_blob = -1;
  int output_blob = -1;

  // Shapes of every blob for an input of `input` shape. Throws upframe::Error (naming the
  // .param file and the layer's line) for a shape the graph cannot take, and for any blob
  // (the input included) that is empty or beyond kMaxShapeSide / kMaxShapeElements; all
  // size arithmetic is done in 64 bits, so a corrupt model cannot overflow it.
  std::vector<Shape> infer_shapes(const Shape& input) const;
  // Index of the last op that reads each blob (-1: never read; the output blob: ops.size()).
  std::vector<int> last_uses() const;
  // Removes Split layers (their outputs alias the input) and folds an activation layer
  // (ReLU, LeakyReLU, Sigmoid, PReLU) into the Convolution before it when the convolution's
  // output has no other reader. Keeps results identical.
  void simplify();
  // Orders ops so each runs after the producers of its inputs; sets input/output blobs.
  // Throws for an undefined blob, a cycle, or not exactly one input and one output.
  void finalize();
  // Input pixels each side one output pixel depends on (conservative); sets *global_context
  // when some op (global pooling) makes every output pixel depend on the whole image, or the
  // radius exceeds kMaxShapeSide (then the radius returned is kMaxShapeSide).
  int receptive_radius(bool* global_context) const;
};

// Assigns each blob a buffer slot so that blobs whose lifetimes do not overlap share memory.
// A blob lives from the op producing it to its last reader. `bytes[i]` is blob i's size.
struct BufferPlan {
  std::vector<int> blob_slot;      // -1 for blobs that are never produced
  std::vector<size_t> slot_bytes;  // capacity of each slot
  size_t total_bytes() const;
};
BufferPlan plan_buffers(const Graph& graph, const std::vector<size_t>& bytes);

}  // namespace upframe::nn
