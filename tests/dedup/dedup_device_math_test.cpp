// The per-thread functions of the CUDA duplicate detection (src/dedup/cuda/device_dedup_math.hpp)
// run here on the CPU over the same thread grids the kernels launch, in shuffled orders, and
// must give exactly the CPU detector's hash, sums and decisions: this checks the kernels'
// index arithmetic and reductions where no GPU is present (tests/cuda compares the real
// kernels when one is).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <numeric>
#include <random>
#include <vector>

#include "../../src/dedup/cuda/device_dedup_math.hpp"
#include "../../src/dedup/kernels.hpp"
#include "upframe/dedup/detector.hpp"
#include "upframe/dedup/hash.hpp"

namespace upframe::dedup {
namespace {

namespace dm = device_math;

// A plane as the decoder lays it out: 8-bit, P010 (10 bits high) or 10 bits low, with a pitch
// wider than the row.
struct TestPlane {
  std::vector<uint8_t> bytes;
  LumaView view;
  dm::Plane plane() const {
    return dm::Plane{view.data, view.linesize, view.width, view.height, view.bit_depth};
  }
};

enum class Layout { k8Bit, kP010, k10BitLow };

// `value(x, y)` gives a 10-bit sample (0..1023); 8-bit planes store it >> 2.
TestPlane make_plane(int width, int height, int pad_bytes, Layout layout,
                     const std::function<int(int, int)>& value) {
  TestPlane p;
  const int bytes = layout == Layout::k8Bit ? 1 : 2;
  const int pitch = width * bytes + pad_bytes;
  p.bytes.assign(static_cast<size_t>(pitch) * height + 16, 0xA5);  // padding holds garbage
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      const int v = std::clamp(value(x, y), 0, 1023);
      uint8_t* at = p.bytes.data() + static_cast<size_t>(y) * pitch + x * bytes;
      if (layout == Layout::k8Bit) {
        *at = static_cast<uint8_t>(v >> 2);
      } else {
        const uint16_t word = layout == Layout::kP010 ? uint16_t(v << 6) : uint16_t(v);
        std::memcpy(at, &word, 2);
      }
    }
  p.view = LumaView{p.bytes.data(), pitch, width, height,
                    layout == Layout::k8Bit ? 8 : (layout == Layout::kP010 ? 16 : 10)};
  return p;
}

std::vector<uint8_t> to_8bit(const LumaView& v) {
  std::vector<uint8_t> out(static_cast<size_t>(v.width) * v.height);
  detail::copy_to_8bit(v, out.data());
  return out;
}

// --- Emulations of the kernels' grids --------------------------------------------------------

struct EmulatedHash {
  AverageHash hash;
  uint64_t luma_sum = 0;
};

EmulatedHash emulate_hash(const dm::Plane& p, int n, int lanes, std::mt19937& rng) {
  const int slices = dm::hash_slices(p.height, n);
  struct Item {
    int cx, cy, slice, lane;
  };
  std::vector<Item> items;
  for (int cy = 0; cy < n; ++cy)
    for (int cx = 0; cx < n; ++cx)
      for (int s = 0; s < slices; ++s)
        for (int lane = 0; lane < lanes; ++lane) items.push_back({cx, cy, s, lane});
  std::shuffle(items.begin(), items.end(), rng);  // atomics add in any order
  std::vector<uint64_t> cell_sums(static_cast<size_t>(n) * n, 0);
  for (const Item& it : items)
    cell_sums[it.cy * n + it.cx] +=
        dm::hash_cell_part(p, n, it.cx, it.cy, it.slice, slices, it.lane, lanes);
  EmulatedHash out;
  out.hash.size = n;
  math::hash_from_cell_sums(cell_sums.data(), p.width, p.height, n, kUnstableMargin,
                            out.hash.words.data(), out.hash.unstable.data());
  out.luma_sum = std::accumulate(cell_sums.begin(), cell_sums.end(), uint64_t{0});
  return out;
}

detail::DifferenceSums emulate_difference(const dm::Plane& a, const dm::Plane& b,
                                          std::mt19937& rng) {
  const int blocks_x = math::block_count(a.width);
  const int total = blocks_x * math::block_count(a.height);
  std::vector<dm::BlockMax> candidates;
  detail::DifferenceSums sums;
  sums.pixel_count = static_cast<int64_t>(a.width) * a.height;
  for (int i = 0; i < total; ++i) {
    const dm::BlockDifference d = dm::block_difference(a, b, i % blocks_x, i / blocks_x);
    sums.abs_sum += d.abs_sum;
    sums.signed_sum += d.signed_sum;
    candidates.push_back(dm::BlockMax{d.abs_sum, dm::block_area(a.width, a.height, i), i});
  }
  // A reduction tree over a shuffled order: pairwise, as the kernel's shared-memory tree.
  std::shuffle(candidates.begin(), candidates.end(), rng);
  while (candidates.size() > 1) {
    std::vector<dm::BlockMax> next;
    for (size_t i = 0; i < candidates.size(); i += 2)
      next.push_back(i + 1 < candidates.size() ? dm::better_block(candidates[i], candidates[i + 1])
                                               : candidates[i]);
    candidates = std::move(next);
  }
  const dm::BlockMax best = dm::cpu_block_max(candidates[0]);
  sums.max_block_abs_sum = best.abs_sum;
  sums.max_block_area = best.area;
  return sums;
}

// The motion kernel: one thread per confirmation block, in a shuffled order; the host adds
// the blocks for the total.
detail::MotionField emulate_motion(const dm::Plane& a, const dm::Plane& b, std::mt19937& rng) {
  detail::MotionField field;
  field.blocks_x = math::block_count(a.width);
  field.blocks_y = math::block_count(a.height);
  field.blocks.assign(static_cast<size_t>(field.blocks_x) * field.blocks_y,
                      math::BlockMotionSums{});
  if (a.width < 3 || a.height < 3) return field;
  std::vector<int> order(field.blocks.size());
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  for (const int i : order)
    field.blocks[i] =
        math::block_sums_of(dm::block_motion(a, b, i % field.blocks_x, i / field.blocks_x));
  for (const math::BlockMotionSums& s : field.blocks) math::add_motion_sums(field.total, s);
  return field;
}

void expect_same_sums(const detail::DifferenceSums& x, const detail::DifferenceSums& y) {
  EXPECT_EQ(x.abs_sum, y.abs_sum);
  EXPECT_EQ(x.signed_sum, y.signed_sum);
  EXPECT_EQ(x.pixel_count, y.pixel_count);
  EXPECT_EQ(x.max_block_abs_sum, y.max_block_abs_sum);
  EXPECT_EQ(x.max_block_area, y.max_block_area);
}

void expect_same_motion(const math::MotionSums& x, const math::MotionSums& y) {
  EXPECT_EQ(x.gxx, y.gxx);
  EXPECT_EQ(x.gxy, y.gxy);
  EXPECT_EQ(x.gyy, y.gyy);
  EXPECT_EQ(x.gxd, y.gxd);
  EXPECT_EQ(x.gyd, y.gyd);
  EXPECT_EQ(x.dd, y.dd);
  EXPECT_EQ(x.gmm, y.gmm);
}

void expect_same_field(const detail::MotionField& x, const detail::MotionField& y) {
  ASSERT_EQ(x.blocks_x, y.blocks_x);
  ASSERT_EQ(x.blocks_y, y.blocks_y);
  ASSERT_EQ(x.blocks.size(), y.blocks.size());
  EXPECT_EQ(std::memcmp(x.blocks.data(), y.blocks.data(),
                        x.blocks.size() * sizeof(math::BlockMotionSums)),
            0);
  expect_same_motion(x.total, y.total);
}

// A textured scene sampled at a sub-pixel offset, in 10-bit levels.
int scene(double x, double y, double brightness_shift, uint32_t seed) {
  const double v = 400 + 200 * std::sin(x * 0.11) * std::cos(y * 0.07) +
                   150 * std::sin(x * 0.031 + y * 0.05) + brightness_shift;
  // Per-sample noise of +-4 levels (10-bit), fixed to the sample grid like coding noise.
  const auto ix = static_cast<uint32_t>(static_cast<int>(std::floor(x)) + 4096);
  const auto iy = static_cast<uint32_t>(static_cast<int>(std::floor(y)) + 4096);
  const uint32_t h = (ix * 2654435761u) ^ (iy * 40503u) ^ (seed * 97u);
  return static_cast<int>(v) + static_cast<int>((h >> 7) % 9) - 4;
}

struct Case {
  int width, height, pad;
  Layout layout;
};

std::vector<Case> cases() {
  return {{64, 48, 0, Layout::k8Bit},     {97, 61, 3, Layout::k8Bit},
          {320, 180, 64, Layout::k8Bit},  {33, 35, 7, Layout::k8Bit},
          {97, 61, 6, Layout::kP010},     {130, 77, 0, Layout::kP010},
          {97, 61, 2, Layout::k10BitLow}, {256, 144, 128, Layout::k10BitLow},
          {17, 9, 1, Layout::k8Bit},      {40, 40, 0, Layout::k10BitLow}};
}

TEST(DedupDeviceMath, HashGridGivesTheCpuHashAndLumaSum) {
  std::mt19937 rng(7);
  for (const Case& c : cases()) {
    const TestPlane p = make_plane(c.width, c.height, c.pad, c.layout,
                                   [](int x, int y) { return scene(x, y, 0, 1); });
    for (const int n : {8, 16, 32}) {
      if (c.width < n || c.height < n) continue;
      uint64_t cpu_sum = 0;
      const AverageHash cpu = detail::hash_and_copy(p.view, n, nullptr, &cpu_sum);
      for (const int lanes : {256, 7}) {
        const EmulatedHash dev = emulate_hash(p.plane(), n, lanes, rng);
        EXPECT_EQ(dev.hash, cpu) << c.width << "x" << c.height << " n=" << n;
        EXPECT_EQ(dev.luma_sum, cpu_sum) << c.width << "x" << c.height << " n=" << n;
      }
    }
  }
}

TEST(DedupDeviceMath, HashSlicesCoverTallCells) {
  for (const int height : {8, 16, 17, 100, 135, 1080, 2160, 4320})
    for (const int n : {8, 16, 32}) {
      if (height < n) continue;
      const int slices = dm::hash_slices(height, n);
      EXPECT_GE(slices, 1);
      EXPECT_LE(slices, height / n);  // no slice is needed empty
    }
}

TEST(DedupDeviceMath, DifferenceAndMotionGridsGiveTheCpuSums) {
  std::mt19937 rng(11);
  for (const Case& c : cases()) {
    // a: the scene; b: the scene panned by 1 px, faded by 4 levels (10-bit), and with a
    // small bright square, so every measure is non-trivial.
    const TestPlane a = make_plane(c.width, c.height, c.pad, c.layout,
                                   [](int x, int y) { return scene(x, y, 0, 1); });
    const TestPlane b = make_plane(c.width, c.height, c.pad + 2, c.layout, [&](int x, int y) {
      const bool square = x >= c.width / 3 && x < c.width / 3 + 5 && y >= 2 && y < 7;
      return square ? 1000 : scene(x - 1, y, 4, 2);
    });
    const std::vector<uint8_t> a8 = to_8bit(a.view), b8 = to_8bit(b.view);
    const detail::DifferenceSums cpu =
        detail::difference_8bit(a8.data(), c.width, b8.data(), c.width, c.width, c.height);
    expect_same_sums(emulate_difference(a.plane(), b.plane(), rng), cpu);
    detail::MotionField cpu_field;
    detail::motion_field_8bit(a8.data(), c.width, b8.data(), c.width, c.width, c.height, cpu_field);
    expect_same_field(emulate_motion(a.plane(), b.plane(), rng), cpu_field);
    // The changed-sample gradient (math::changed_sample) is exercised both ways: some samples
    // changed by 4 levels or more, others by less.
    EXPECT_GT(cpu_field.total.gmm, 0) << c.width << "x" << c.height;
    EXPECT_LT(cpu_field.total.gmm, cpu_field.total.gxx + cpu_field.total.gyy)
        << c.width << "x" << c.height;
  }
}

TEST(DedupDeviceMath, EqualBlockMeansKeepTheFirstBlockLikeTheCpu) {
  // 17 wide: blocks of 8 and 9 columns; a difference of 1 everywhere gives both mean 1.
  const TestPlane a = make_plane(17, 8, 0, Layout::k8Bit, [](int, int) { return 400; });
  const TestPlane b = make_plane(17, 8, 0, Layout::k8Bit, [](int, int) { return 404; });
  std::mt19937 rng(3);
  for (int round = 0; round < 8; ++round) {
    const detail::DifferenceSums dev = emulate_difference(a.plane(), b.plane(), rng);
    const detail::DifferenceSums cpu =
        detail::difference_8bit(a.view.data, a.view.linesize, b.view.data, b.view.linesize, 17, 8);
    expect_same_sums(dev, cpu);
    EXPECT_EQ(dev.max_block_area, 64);
  }
  // Identical planes: the CPU keeps its starting (0, 1).
  const detail::DifferenceSums same = emulate_difference(a.plane(), a.plane(), rng);
  EXPECT_EQ(same.max_block_abs_sum, 0u);
  EXPECT_EQ(same.max_block_area, 1);
}

TEST(DedupDeviceMath, SharedDecisionGivesTheCpuDecisionAndMeasures) {
  std::mt19937 rng(5);
  const Thresholds t = default_thresholds();
  int duplicates = 0, changes = 0;
  for (const Layout layout : {Layout::k8Bit, Layout::kP010, Layout::k10BitLow}) {
    const int w = 97, h = 61;
    const auto frame = [&](double shift, double fade, uint32_t noise_seed) {
      return make_plane(w, h, 5, layout,
                        [=](int x, int y) { return scene(x - shift, y, fade, noise_seed); });
    };
    const TestPlane base = frame(0, 0, 1);
    // Same picture with other coding-like noise (a duplicate), a 1 px pan, a 0.5 px pan, a
    // fade of about 1 level (8-bit) and the same frame again.
    const TestPlane others[] = {frame(0, 0, 9), frame(1, 0, 1), frame(0.5, 0, 1), frame(0, 4, 1),
                                frame(0, 0, 1)};
    for (const TestPlane& other : others) {
      uint64_t sum_a = 0, sum_b = 0;
      detail::hash_and_copy(base.view, 8, nullptr, &sum_a);
      detail::hash_and_copy(other.view, 8, nullptr, &sum_b);
      const std::vector<uint8_t> a8 = to_8bit(base.view), b8 = to_8bit(other.view);
      const bool cpu =
          detail::confirm_duplicate_8bit(a8.data(), w, b8.data(), w, w, h, sum_a, sum_b, t);
      const bool dev = detail::confirm_duplicate(
          sum_a, sum_b, w, h, t,
          [&] { return emulate_difference(base.plane(), other.plane(), rng); },
          [&] { return emulate_motion(base.plane(), other.plane(), rng); });
      EXPECT_EQ(dev, cpu);
      (cpu ? duplicates : changes)++;
      const DifferenceMeasures cpu_m = measure_difference(base.view, other.view);
      const DifferenceMeasures dev_m =
          detail::measures_from_sums(emulate_difference(base.plane(), other.plane(), rng),
                                     emulate_motion(base.plane(), other.plane(), rng), w, h, t);
      EXPECT_EQ(std::memcmp(&cpu_m, &dev_m, sizeof cpu_m), 0);
    }
  }
  // Both outcomes were exercised.
  EXPECT_GT(duplicates, 0);
  EXPECT_GT(changes, 0);
}

}  // namespace
}  // namespace upframe::dedup
