#include "upframe/nn/tiling.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

#include "nn/nn_test_util.hpp"
#include "support/test_support.hpp"
#include "test_frames.hpp"
#include "upframe/error.hpp"

namespace upframe::nn {
namespace {

using test::max_abs_difference;

// A small real network in plain C++: two 3x3 box blurs with zero padding (receptive radius 2),
// then nearest x2. Enough to show seams when the overlap is too small, and it records the
// shapes it was run on.
class BlurUpscaleExecutor : public Executor {
 public:
  Tensor run(const Tensor& input) override {
    shapes.insert({input.width, input.height});
    Tensor a = blur(blur(input));
    Tensor out(a.channels, a.height * 2, a.width * 2);
    for (int c = 0; c < a.channels; ++c)
      for (int y = 0; y < out.height; ++y)
        for (int x = 0; x < out.width; ++x) out.at(c, y, x) = a.at(c, y / 2, x / 2);
    return out;
  }
  Precision precision() const override { return Precision::kFp32; }
  std::set<std::pair<int, int>> shapes;

 private:
  static Tensor blur(const Tensor& in) {
    Tensor out(in.channels, in.height, in.width);
    for (int c = 0; c < in.channels; ++c)
      for (int y = 0; y < in.height; ++y)
        for (int x = 0; x < in.width; ++x) {
          float sum = 0;
          for (int dy = -1; dy <= 1; ++dy)
            for (int dx = -1; dx <= 1; ++dx) {
              const int yy = y + dy, xx = x + dx;
              if (yy >= 0 && yy < in.height && xx >= 0 && xx < in.width) sum += in.at(c, yy, xx);
            }
          out.at(c, y, x) = sum / 9.0f;
        }
    return out;
  }
};

TEST(Tiling, StitchedEqualsWholeWithEnoughOverlap) {
  const Tensor input = test::smooth_rgb(53, 37);
  BlurUpscaleExecutor whole_exec;
  const Tensor whole = whole_exec.run(input);
  BlurUpscaleExecutor tiled_exec;
  const Tensor tiled = run_tiled(tiled_exec, input, 16, 2, 2);
  ASSERT_EQ(tiled.width, 106);
  ASSERT_EQ(tiled.height, 74);
  EXPECT_EQ(max_abs_difference(whole, tiled), 0.0f);
  // Every window has the same shape (tile + 2 * overlap), even at the edges.
  EXPECT_EQ(tiled_exec.shapes, (std::set<std::pair<int, int>>{{20, 20}}));
  // Too little overlap shows seams: the test can see a stitching error.
  BlurUpscaleExecutor thin_exec;
  EXPECT_GT(max_abs_difference(whole, run_tiled(thin_exec, input, 16, 1, 2)), 1e-3f);
}

TEST(Tiling, ZeroOrLargeTileRunsWhole) {
  const Tensor input = test::smooth_rgb(20, 10);
  BlurUpscaleExecutor exec;
  run_tiled(exec, input, 0, 4, 2);
  run_tiled(exec, input, 32, 4, 2);
  EXPECT_EQ(exec.shapes, (std::set<std::pair<int, int>>{{20, 10}}));
  EXPECT_THROW(run_tiled(exec, input, 0, 4, 3), Error);  // a scale the executor does not give
}

// The window plan both tiling loops (host and device) follow: every pixel in exactly one core,
// each core inside its window, all windows one size and inside the image.
TEST(Tiling, WindowsCoverTheImageOnce) {
  for (const auto& [width, height, tile, overlap] : std::vector<std::tuple<int, int, int, int>>{
           {100, 37, 32, 5}, {64, 64, 32, 0}, {33, 200, 16, 20}, {20, 10, 32, 4}, {50, 40, 0, 3}}) {
    const std::vector<TileWindow> windows = tile_windows(width, height, tile, overlap);
    std::vector<int> covered(size_t(width) * height, 0);
    for (const TileWindow& w : windows) {
      EXPECT_EQ(w.win_w, windows.front().win_w);
      EXPECT_EQ(w.win_h, windows.front().win_h);
      EXPECT_GE(w.win_x, 0);
      EXPECT_GE(w.win_y, 0);
      EXPECT_LE(w.win_x + w.win_w, width);
      EXPECT_LE(w.win_y + w.win_h, height);
      EXPECT_GE(w.core_x, w.win_x);
      EXPECT_GE(w.core_y, w.win_y);
      EXPECT_LE(w.core_x + w.core_w, w.win_x + w.win_w);
      EXPECT_LE(w.core_y + w.core_h, w.win_y + w.win_h);
      // Context of `overlap` pixels on every side that is not the image edge.
      EXPECT_TRUE(w.core_x - w.win_x >= std::min(overlap, w.core_x));
      EXPECT_TRUE(w.win_x + w.win_w - w.core_x - w.core_w >=
                  std::min(overlap, width - w.core_x - w.core_w));
      for (int y = w.core_y; y < w.core_y + w.core_h; ++y)
        for (int x = w.core_x; x < w.core_x + w.core_w; ++x) ++covered[size_t(y) * width + x];
    }
    EXPECT_TRUE(std::all_of(covered.begin(), covered.end(), [](int n) { return n == 1; }))
        << width << "x" << height << " tile " << tile;
    if (tile <= 0 || (width <= tile && height <= tile)) {
      EXPECT_EQ(windows.size(), 1u);
    }
  }
}

// The real model, fp32: tiles in both directions give the untiled result.
TEST(Tiling, AnimeVideoV3TiledEqualsUntiled) {
  // x2: the x4 network plus a bicubic down-scale, the harder case for stitching.
  for (const char* stem : {"realesr-animevideov3-x2"}) {
    auto model = test::source_model(std::string("models/") + stem + ".param");
    const int scale = model->info().scale;
    const int overlap = model->info().receptive_radius;
    EXPECT_GE(overlap, 18) << stem;  // 18 chained 3x3 convolutions
    auto executor = make_cpu_executor(model, Precision::kFp32);
    const Tensor input = test::smooth_rgb(160, 90);
    const Tensor whole = executor->run(input);
    const Tensor tiled = run_tiled(*executor, input, 48, overlap, scale);
    ASSERT_EQ(tiled.width, 160 * scale);
    ASSERT_EQ(tiled.height, 90 * scale);
    EXPECT_LT(max_abs_difference(whole, tiled), 1e-4f) << stem;
  }
}

TEST(Tiling, AutoTileFollowsTheBudget) {
  auto model = test::source_model("models/realesr-animevideov3-x2.param");
  const size_t per_pixel = model_bytes_per_input_pixel(*model);
  EXPECT_GE(per_pixel, size_t(64 * 4));  // at least one 64-channel fp32 blob
  const int big = auto_tile_size(*model, size_t(1) << 30);
  const int small = auto_tile_size(*model, size_t(64) << 20);
  EXPECT_EQ(big % 16, 0);
  EXPECT_GT(big, small);
  EXPECT_GE(small, 32);
  const double window = big + 2.0 * model->info().receptive_radius;
  EXPECT_LE(window * window * per_pixel, double(size_t(1) << 30));
  EXPECT_GT(default_cpu_tile_budget_bytes(), size_t(0));
}

}  // namespace
}  // namespace upframe::nn
