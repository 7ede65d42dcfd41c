// Tile reuse's decision (upframe/dedup/tile_changes.hpp) on generated luma planes: which tiles
// change, each against the source its held pixels came from (its own reference), so a change
// too slow for the gate frame to frame is still caught once it adds up.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "support/synth.hpp"
#include "upframe/dedup/luma.hpp"
#include "upframe/dedup/tile_changes.hpp"

namespace upframe::dedup {
namespace {

constexpr int kWidth = 256, kHeight = 144, kTile = 64, kHalo = 18;

struct Plane {
  std::vector<uint8_t> samples = std::vector<uint8_t>(size_t(kWidth) * kHeight);
  LumaView view() const { return {samples.data(), kWidth, kWidth, kHeight, 8}; }
  uint8_t& at(int x, int y) { return samples[size_t(y) * kWidth + x]; }
};

// The textured scene the dedup tests draw (gradients, texture, discs), plus `offset` levels.
Plane scene(double offset = 0) {
  Plane p;
  for (int y = 0; y < kHeight; ++y)
    for (int x = 0; x < kWidth; ++x)
      p.at(x, y) = uint8_t(
          std::clamp(std::lround(test::synth::scene_luma(3, x, y) * 0.8 + 20 + offset), 0L, 255L));
  return p;
}

// Coding-noise stand-in: +-1 level on a random tenth of the samples.
Plane with_noise(Plane p, uint32_t seed) {
  std::mt19937 rng(seed);
  for (uint8_t& v : p.samples)
    if (rng() % 10 == 0) v = uint8_t(std::clamp(int(v) + (rng() % 2 ? 1 : -1), 0, 255));
  return p;
}

Plane with_square(Plane p, int x0, int y0, int size) {
  for (int y = y0; y < y0 + size; ++y)
    for (int x = x0; x < x0 + size; ++x) p.at(x, y) = 250;
  return p;
}

TileReuseOptions options() {
  TileReuseOptions o;
  o.tile = kTile;
  o.halo = kHalo;
  return o;
}

// Whether tile (c, r) plus the halo overlaps the rectangle [x0, x1) x [y0, y1).
bool window_touches(int c, int r, int x0, int y0, int x1, int y1) {
  return c * kTile - kHalo < x1 && (c + 1) * kTile + kHalo > x0 && r * kTile - kHalo < y1 &&
         (r + 1) * kTile + kHalo > y0;
}

TEST(TileChanges, FirstFrameComputesEveryTileAndANoisyRepeatNone) {
  TileChangeTracker tracker(options());
  const Plane still = scene();
  const TileMask first = tracker.next(still.view());
  EXPECT_EQ(first.columns, 4);
  EXPECT_EQ(first.rows, 3);  // 144 = 64 + 64 + 16
  EXPECT_TRUE(first.all_changed());
  EXPECT_EQ(tracker.next(with_noise(still, 1).view()).changed_count(), 0);
  EXPECT_EQ(tracker.next(with_noise(still, 2).view()).changed_count(), 0);
  tracker.reset();
  EXPECT_TRUE(tracker.next(still.view()).all_changed()) << "reset() must forget the references";
}

TEST(TileChanges, AMovingSpriteChangesOnlyTheTilesWhoseWindowItCrosses) {
  TileChangeTracker tracker(options());
  const Plane ground = scene();
  tracker.next(with_square(ground, 100, 20, 12).view());
  const TileMask mask = tracker.next(with_noise(with_square(ground, 106, 20, 12), 5).view());
  int expected = 0;
  for (int r = 0; r < mask.rows; ++r)
    for (int c = 0; c < mask.columns; ++c) {
      const bool touched = window_touches(c, r, 100, 20, 118, 32);
      expected += touched;
      EXPECT_EQ(mask.is_changed(c, r), touched) << "tile " << c << "," << r;
    }
  EXPECT_EQ(expected, 2);  // tiles (1,0) and (2,0): the sprite sits at x 100..117, y 20..31
}

TEST(TileChanges, AChangeInTheHaloAloneRecomputesTheTile) {
  // The square lies in tile (2,0) only, 10 px right of tile (1,0): that tile's pixels depend on
  // it through the network's receptive field.
  TileChangeTracker tracker(options());
  const Plane ground = scene();
  tracker.next(ground.view());
  const TileMask mask = tracker.next(with_square(ground, 138, 30, 8).view());
  EXPECT_TRUE(mask.is_changed(1, 0));
  EXPECT_TRUE(mask.is_changed(2, 0));
  EXPECT_FALSE(mask.is_changed(0, 0));
  EXPECT_FALSE(mask.is_changed(3, 0));  // 192 - 18 = 174 > 146
}

TEST(TileChanges, ASlowFadeIsCaughtOnceItAddsUpSinceTheReference) {
  // 0.3 levels a frame: under the gate frame to frame (|signed mean| 0.6), so a compare with
  // the previous frame would reuse the first frame's pixels for ever.
  TileChangeTracker tracker(options());
  tracker.next(scene().view());
  int first_recompute = -1;
  for (int frame = 1; frame <= 6 && first_recompute < 0; ++frame)
    if (tracker.next(scene(-0.3 * frame).view()).all_changed()) first_recompute = frame;
  ASSERT_GT(first_recompute, 1) << "one step of the fade is under the gate";
  EXPECT_LE(first_recompute, 3) << "the fade since the reference passed the gate";
  // The references moved with the recompute: the next step is under the gate again.
  EXPECT_EQ(tracker.next(scene(-0.3 * (first_recompute + 1)).view()).changed_count(), 0);
}

TEST(TileChanges, AKeyframeRecodingTheWholePictureRecomputesEveryTile) {
  // About 1 level of new noise on every sample: under the frame gate's mean |difference| of 2.5,
  // over the tiles' 0.5.
  TileChangeTracker tracker(options());
  const Plane still = scene();
  tracker.next(still.view());
  Plane recoded = still;
  std::mt19937 rng(9);
  for (uint8_t& v : recoded.samples) v = uint8_t(std::clamp(int(v) + int(rng() % 3) - 1, 0, 255));
  EXPECT_TRUE(tracker.next(recoded.view()).all_changed());
}

TEST(TileChanges, ManyChangedTilesComputeTheWholeFrame) {
  TileChangeTracker tracker(options());
  tracker.next(scene().view());
  Plane panned;
  for (int y = 0; y < kHeight; ++y)
    for (int x = 0; x < kWidth; ++x)
      panned.at(x, y) = uint8_t(std::lround(test::synth::scene_luma(3, x + 2, y) * 0.8 + 20));
  EXPECT_TRUE(tracker.next(panned.view()).all_changed());
}

TEST(TileChanges, TenBitPlanesAreComparedAtEightBits) {
  std::vector<uint16_t> a(size_t(kWidth) * kHeight), b;
  const Plane base = scene();
  for (size_t i = 0; i < a.size(); ++i) a[i] = uint16_t(base.samples[i] << 2);
  b = a;
  for (int y = 20; y < 32; ++y)
    for (int x = 20; x < 32; ++x) b[size_t(y) * kWidth + x] = 1000;
  TileChangeTracker tracker(options());
  const auto view = [](const std::vector<uint16_t>& s) {
    return LumaView{reinterpret_cast<const uint8_t*>(s.data()), kWidth * 2, kWidth, kHeight, 10};
  };
  tracker.next(view(a));
  const TileMask mask = tracker.next(view(b));
  EXPECT_EQ(mask.changed_count(), 1);
  EXPECT_TRUE(mask.is_changed(0, 0));
}

TEST(TileChanges, ReuseWindowsCoverEveryChangedTileInAFewShapes) {
  TileMask mask(1000, 300, 64);  // 16 x 5 tiles, the last column 40 wide, the last row 44 high
  std::fill(mask.changed.begin(), mask.changed.end(), uint8_t{0});
  for (int c = 0; c < 16; ++c) mask.changed[size_t(1) * 16 + c] = 1;  // a whole row: 8 + 8
  for (int c = 3; c < 10; ++c) mask.changed[size_t(4) * 16 + c] = 1;  // 7 tiles: 4 + 2 + 1
  const std::vector<ReuseWindow> windows = reuse_windows(mask, 20, 8);
  ASSERT_EQ(windows.size(), 5u);
  std::vector<int> covered(mask.changed.size(), 0);
  for (const ReuseWindow& w : windows) {
    EXPECT_LE(w.window.x, std::max(0, w.core.x - 20));
    EXPECT_GE(w.window.x + w.window.w, std::min(1000, w.core.x + w.core.w + 20));
    EXPECT_LE(w.window.y, std::max(0, w.core.y - 20));
    EXPECT_GE(w.window.y + w.window.h, std::min(300, w.core.y + w.core.h + 20));
    EXPECT_GE(w.window.x, 0);
    EXPECT_LE(w.window.x + w.window.w, 1000);
    EXPECT_LE(w.window.y + w.window.h, 300);
    for (int c = w.core.x / 64; c * 64 < w.core.x + w.core.w; ++c)
      ++covered[size_t(w.core.y / 64) * 16 + c];
  }
  for (size_t i = 0; i < covered.size(); ++i) EXPECT_EQ(covered[i], mask.changed[i]) << i;
  // Shapes from the run length only, shifted inwards at the edges.
  EXPECT_EQ(windows[0].window.w, windows[1].window.w);
  EXPECT_EQ(windows[0].window.h, windows[4].window.h);
  EXPECT_EQ(reuse_windows(mask, 20, 1).size(), 23u);  // one window a tile
}

}  // namespace
}  // namespace upframe::dedup
