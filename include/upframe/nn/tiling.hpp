// Tiled execution: a big image is cut into tiles that each carry enough context (overlap) for
// their centre to equal the untiled result; only the centres are stitched. Backend-independent
// (CPU and CUDA executors share it).
#pragma once

#include <cstddef>
#include <vector>

#include "upframe/nn/model.hpp"
#include "upframe/nn/tensor.hpp"
#include "upframe/tile_mask.hpp"

namespace upframe::nn {

// Runs `executor` over `input` in tiles of `tile` x `tile` input pixels (the last ones in a
// row/column smaller), each run on a window that adds `overlap` pixels of context on every
// inner side; all windows have the same shape (upframe::window_span), shifted inwards at
// the image edges, so a backend that caches per-shape primitives builds them once. With
// overlap >= the model's receptive_radius the result equals executor.run(input) (up to
// floating-point reassociation). `tile` <= 0, or an input no bigger than one tile: one run on
// the whole input. `scale` is the model's output/input size ratio; a result of another size
// throws upframe::Error. `alignment`: the model's ModelInfo::tile_alignment (windows start on
// its grid, upframe::window_span).
Tensor run_tiled(Executor& executor, const Tensor& input, int tile, int overlap, int scale,
                 int alignment = 1);

// The width x height part of `input` at (x, y) (inside it), every channel.
Tensor crop(const Tensor& input, int x, int y, int width, int height);

// Tile reuse (upframe/tile_mask.hpp): runs each of `windows` on its part of `input` (through
// run_tiled with `tile` and `overlap`, so a window bigger than the memory tile is tiled too) and
// writes into `output` (3 x scale x the input's size, allocated by the caller) its core plus
// `keep_margin` pixels around it, inside the input: with windows of at least overlap +
// keep_margin of context, those pixels are the whole-frame result. The rest of `output` is
// left as it was. `windows` start on the model's `alignment` grid (reuse_windows).
void run_reuse_windows(Executor& executor, const Tensor& input,
                       const std::vector<ReuseWindow>& windows, int tile, int overlap, int scale,
                       int keep_margin, Tensor& output, int alignment = 1);

// The windows run_tiled runs, in order: each a window (win_*) of the input that the executor
// runs, and the core (core_*) of it whose result is kept; the cores cover the image once. One
// window (the whole image) when `tile` <= 0 or the image fits a tile. Shared by the host and
// device tiling loops.
struct TileWindow {
  int win_x, win_y, win_w, win_h;
  int core_x, core_y, core_w, core_h;
};
std::vector<TileWindow> tile_windows(int width, int height, int tile, int overlap,
                                     int alignment = 1);

// Bytes per input pixel of the biggest set of blobs alive at once while running `model`
// (from the graph's buffer plan, fp32 activations).
size_t model_bytes_per_input_pixel(const Model& model);

// The CPU's memory budget for one worker's activations: a fixed 1 GiB, or a quarter of the
// physical RAM where that is less. It does not depend on free memory at the moment, nor on the
// worker count, so the tile size (and the output) is the same in every run on a machine.
size_t default_cpu_tile_budget_bytes();

// The largest tile side (a multiple of 16, at least 32) whose window
// (tile + 2*receptive_radius)^2 x bytes-per-input-pixel fits `budget_bytes`. Returns 0 (no
// tiling) for a model whose output depends on the whole image (global pooling), where tiles
// would change the result.
int auto_tile_size(const Model& model, size_t budget_bytes);
// The same for another backend's bytes per input pixel (the CUDA executor's, fp16 or fp32).
int tile_for_budget(const Model& model, size_t bytes_per_input_pixel, size_t budget_bytes);

}  // namespace upframe::nn
