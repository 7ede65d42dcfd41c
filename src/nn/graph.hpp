// The backend-independent form of an ncnn model: typed ops (nn/ops.hpp) with their weights
// (fp32), named blobs, shape inference, the receptive-field walk and a buffer plan.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ops.hpp"  // relative: tests include this header by path
#include "upframe/error.hpp"

namespace upframe::nn {

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

// Pixels a kernel spans: dilation * (kernel - 1) + 1, in 64 bits (both may be near INT_MAX).
int64_t kernel_extent(int kernel, int dilation);

// What an op's shape function sees (Graph::infer_shapes): the op, its input shapes, the graph's
// input shape (for the Input op) and the checks every shape function shares; its errors name
// the .param file, the line and the layer.
class ShapeContext {
 public:
  ShapeContext(const std::string& file, const Op& op, std::vector<Shape> inputs,
               const Shape& graph_input);
  const Op& op;
  const std::vector<Shape> in;
  const Shape& graph_input;

  Error fail(const std::string& what) const;
  void need_image(const Shape& s) const;
  // An output shape computed in 64 bits, refused when empty or beyond the shape limits.
  Shape checked(int dims, int64_t c, int64_t h, int64_t w) const;
  static std::string text(const Shape& s);  // "CxHxW", "[W]" for a vector
  std::string in_text() const;              // the first input's (the graph input's for Input)

 private:
  const std::string& file_;
};
// An op type's output shape for its inputs; throws ShapeContext::fail's error.
using ShapeFunction = Shape (*)(const ShapeContext&);
// Each type's shape function, defined beside its parser (ncnn_layers.cpp).
ShapeFunction op_shape_function(OpType type);

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
  // Input pixels each side one output pixel depends on (conservative, and rounded up to a
  // multiple of the graph's downsampling factor so tile windows stay aligned); sets
  // *global_context when some op (global pooling) makes every output pixel depend on the whole
  // image, or the radius exceeds kMaxShapeSide (then the radius returned is kMaxShapeSide).
  // *tile_alignment (when given): that downsampling factor, 1 for none.
  int receptive_radius(bool* global_context, int* tile_alignment = nullptr) const;
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
