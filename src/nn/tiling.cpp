#include "upframe/nn/tiling.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "nn/graph.hpp"
#include "upframe/error.hpp"

namespace upframe::nn {

namespace {}  // namespace

std::vector<TileWindow> tile_windows(int width, int height, int tile, int overlap, int alignment) {
  if (tile <= 0 || (width <= tile && height <= tile))
    return {{0, 0, width, height, 0, 0, width, height}};
  overlap = std::max(overlap, 0);
  std::vector<TileWindow> windows;
  for (int core_y = 0; core_y < height; core_y += tile) {
    const int core_h = std::min(tile, height - core_y);
    const WindowSpan y = window_span(core_y, tile, overlap, height, alignment);
    for (int core_x = 0; core_x < width; core_x += tile) {
      const int core_w = std::min(tile, width - core_x);
      const WindowSpan x = window_span(core_x, tile, overlap, width, alignment);
      windows.push_back({x.start, y.start, x.size, y.size, core_x, core_y, core_w, core_h});
    }
  }
  return windows;
}

Tensor crop(const Tensor& input, int x0, int y0, int width, int height) {
  Tensor out(input.channels, height, width);
  for (int c = 0; c < input.channels; ++c)
    for (int y = 0; y < height; ++y)
      std::memcpy(&out.at(c, y, 0), input.plane(c) + size_t(y0 + y) * input.width + x0,
                  sizeof(float) * width);
  return out;
}

namespace {

std::string dims(int width, int height) {
  return std::to_string(width) + "x" + std::to_string(height);
}

}  // namespace

Tensor run_tiled(Executor& executor, const Tensor& input, int tile, int overlap, int scale,
                 int alignment) {
  const int width = input.width, height = input.height;
  auto check = [&](const Tensor& result, int in_w, int in_h) {
    if (result.width != in_w * scale || result.height != in_h * scale)
      throw Error({}, "the model turned a " + dims(in_w, in_h) + " input into " +
                          dims(result.width, result.height) + ", expected x" +
                          std::to_string(scale));
  };
  const std::vector<TileWindow> windows = tile_windows(width, height, tile, overlap, alignment);
  if (windows.size() == 1) {
    Tensor result = executor.run(input);
    check(result, width, height);
    return result;
  }
  Tensor output;
  for (const TileWindow& w : windows) {
    const Tensor result = executor.run(crop(input, w.win_x, w.win_y, w.win_w, w.win_h));
    check(result, w.win_w, w.win_h);
    if (output.data.empty()) output = Tensor(result.channels, height * scale, width * scale);
    // Copy the core's part of the window's result.
    const int src_x = (w.core_x - w.win_x) * scale, src_y = (w.core_y - w.win_y) * scale;
    for (int c = 0; c < result.channels; ++c)
      for (int y = 0; y < w.core_h * scale; ++y)
        std::memcpy(&output.at(c, w.core_y * scale + y, w.core_x * scale),
                    result.plane(c) + size_t(src_y + y) * result.width + src_x,
                    sizeof(float) * w.core_w * scale);
  }
  return output;
}

void run_reuse_windows(Executor& executor, const Tensor& input,
                       const std::vector<ReuseWindow>& windows, int tile, int overlap, int scale,
                       int keep_margin, Tensor& output, int alignment) {
  if (output.channels != input.channels || output.width != input.width * scale ||
      output.height != input.height * scale)
    throw Error({}, "the tile reuse output is " + dims(output.width, output.height) +
                        ", expected " + dims(input.width * scale, input.height * scale));
  for (const ReuseWindow& w : windows) {
    const PixelRect& win = w.window;
    const Tensor result = run_tiled(executor, crop(input, win.x, win.y, win.w, win.h), tile,
                                    overlap, scale, alignment);
    if (result.channels != input.channels)
      throw Error({}, "the model gave " + std::to_string(result.channels) + " channels for " +
                          std::to_string(input.channels));
    // The core and its margin, inside the input (and so inside the window).
    const int x0 = std::max(0, w.core.x - keep_margin);
    const int y0 = std::max(0, w.core.y - keep_margin);
    const int x1 = std::min(input.width, w.core.x + w.core.w + keep_margin);
    const int y1 = std::min(input.height, w.core.y + w.core.h + keep_margin);
    const int src_x = (x0 - win.x) * scale, src_y = (y0 - win.y) * scale;
    for (int c = 0; c < result.channels; ++c)
      for (int y = 0; y < (y1 - y0) * scale; ++y)
        std::memcpy(&output.at(c, y0 * scale + y, x0 * scale),
                    result.plane(c) + size_t(src_y + y) * result.width + src_x,
                    sizeof(float) * size_t(x1 - x0) * scale);
  }
}

size_t model_bytes_per_input_pixel(const Model& model) {
  const Graph& graph = model.graph();
  constexpr int kProbe = 64;  // activations scale with the pixel count; any size will do
  const std::vector<Shape> shapes =
      graph.infer_shapes(Shape{3, model.info().input_channels, kProbe, kProbe});
  std::vector<size_t> bytes(shapes.size());
  for (size_t i = 0; i < shapes.size(); ++i) bytes[i] = shapes[i].elements() * sizeof(float);
  const BufferPlan plan = plan_buffers(graph, bytes);
  return std::max<size_t>(1, plan.total_bytes() / (kProbe * kProbe));
}

size_t default_cpu_tile_budget_bytes() {
  constexpr size_t kDefault = size_t(1) << 30;
  const long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page_size <= 0) return kDefault;
  return std::min(kDefault, size_t(pages) * size_t(page_size) / 4);
}

int auto_tile_size(const Model& model, size_t budget_bytes) {
  return tile_for_budget(model, model_bytes_per_input_pixel(model), budget_bytes);
}

int tile_for_budget(const Model& model, size_t bytes_per_input_pixel, size_t budget_bytes) {
  bool global_context = false;
  const int radius = model.graph().receptive_radius(&global_context);
  if (global_context) return 0;
  const double window =
      std::sqrt(double(budget_bytes) / double(std::max<size_t>(1, bytes_per_input_pixel)));
  const int tile = (int(window) - 2 * radius) / 16 * 16;
  return std::max(tile, 32);
}

}  // namespace upframe::nn
