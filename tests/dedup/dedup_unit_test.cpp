// luma_of, the average hash, the confirmation measures and the detector's bookkeeping,
// checked against a plain reference of the integer definitions (docs/DEDUP.md).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <random>
#include <vector>

#include "support/synth.hpp"
#include "upframe/dedup/detector.hpp"
#include "upframe/error.hpp"

extern "C" {
#include <libavutil/pixdesc.h>
}

namespace upframe::dedup {
namespace {

namespace synth = upframe::test::synth;

int sample8(const LumaView& v, int x, int y) {
  const uint8_t* row = v.data + static_cast<ptrdiff_t>(y) * v.linesize;
  if (v.bit_depth == 8) return row[x];
  return reinterpret_cast<const uint16_t*>(row)[x] >> (v.bit_depth - 8);
}

// The hash as docs/DEDUP.md defines it, written the obvious way.
AverageHash reference_hash(const LumaView& v, int n) {
  std::vector<uint64_t> avg(n * n);
  uint64_t total = 0;
  for (int cy = 0; cy < n; ++cy)
    for (int cx = 0; cx < n; ++cx) {
      const int x0 = cx * v.width / n, x1 = (cx + 1) * v.width / n;
      const int y0 = cy * v.height / n, y1 = (cy + 1) * v.height / n;
      uint64_t sum = 0;
      for (int y = y0; y < y1; ++y)
        for (int x = x0; x < x1; ++x) sum += sample8(v, x, y);
      avg[cy * n + cx] = sum / ((x1 - x0) * (y1 - y0));
      total += avg[cy * n + cx];
    }
  AverageHash h;
  h.size = n;
  for (int k = 0; k < n * n; ++k) {
    const int64_t offset = static_cast<int64_t>(avg[k] * n * n) - static_cast<int64_t>(total);
    if (offset > 0) h.words[k / 64] |= uint64_t{1} << (k % 64);
    if (std::llabs(offset) <= static_cast<int64_t>(kUnstableMargin) * n * n)
      h.unstable[k / 64] |= uint64_t{1} << (k % 64);
  }
  return h;
}

DifferenceMeasures reference_measures(const LumaView& a, const LumaView& b) {
  const int w = a.width, h = a.height;
  const int bx = std::max(1, w / 8), by = std::max(1, h / 8);
  int64_t abs_sum = 0, signed_sum = 0;
  double worst = 0;
  for (int j = 0; j < by; ++j)
    for (int i = 0; i < bx; ++i) {
      const int x0 = i * w / bx, x1 = (i + 1) * w / bx, y0 = j * h / by, y1 = (j + 1) * h / by;
      int64_t block = 0;
      for (int y = y0; y < y1; ++y)
        for (int x = x0; x < x1; ++x) {
          const int d = sample8(a, x, y) - sample8(b, x, y);
          block += std::abs(d);
          signed_sum += d;
        }
      abs_sum += block;
      worst = std::max(worst, static_cast<double>(block) / ((x1 - x0) * (y1 - y0)));
    }
  return {static_cast<double>(abs_sum) / (w * h), static_cast<double>(signed_sum) / (w * h), worst};
}

// The motion measure as docs/DEDUP.md defines it: integer sums of Sobel gradients of a + b
// against d = b - a over the interior samples, then the 2x2 least-squares solve.
DifferenceMeasures reference_motion(const LumaView& a, const LumaView& b) {
  int64_t xx = 0, xy = 0, yy = 0, xd = 0, yd = 0, dd = 0;
  const auto m = [&](int x, int y) { return sample8(a, x, y) + sample8(b, x, y); };
  for (int y = 1; y + 1 < a.height; ++y)
    for (int x = 1; x + 1 < a.width; ++x) {
      const int64_t gx = (m(x + 1, y - 1) + 2 * m(x + 1, y) + m(x + 1, y + 1)) -
                         (m(x - 1, y - 1) + 2 * m(x - 1, y) + m(x - 1, y + 1));
      const int64_t gy = (m(x - 1, y + 1) + 2 * m(x, y + 1) + m(x + 1, y + 1)) -
                         (m(x - 1, y - 1) + 2 * m(x, y - 1) + m(x + 1, y - 1));
      const int64_t d = sample8(b, x, y) - sample8(a, x, y);
      xx += gx * gx, xy += gx * gy, yy += gy * gy, xd += gx * d, yd += gy * d, dd += d * d;
    }
  DifferenceMeasures r;
  if (dd == 0 || xx + yy == 0) return r;
  const double det = double(xx) * double(yy) - double(xy) * double(xy);
  EXPECT_GT(det, 1e-9 * double(xx) * double(yy)) << "test pictures have 2-D texture";
  const double p = (double(yy) * double(xd) - double(xy) * double(yd)) / det;
  const double q = (double(xx) * double(yd) - double(xy) * double(xd)) / det;
  r.motion_explained = std::min(1.0, std::max(0.0, (p * double(xd) + q * double(yd)) / double(dd)));
  r.motion_shift_x = -16 * p;
  r.motion_shift_y = -16 * q;
  r.motion = std::hypot(r.motion_shift_x, r.motion_shift_y) * std::sqrt(r.motion_explained);
  return r;
}

Frame noise_frame(int w, int h, AVPixelFormat fmt, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<double> values(static_cast<size_t>(w) * h);
  for (auto& v : values) v = (rng() % 1024) / 4.0;
  return synth::render_frame(w, h, fmt, [&](int x, int y) { return values[y * w + x]; });
}

TEST(LumaOf, ReadsEveryHostYuvAndGrayFormat) {
  const struct {
    AVPixelFormat format;
    int bit_depth;
  } cases[] = {{AV_PIX_FMT_YUV420P, 8},      {AV_PIX_FMT_YUV422P, 8},
               {AV_PIX_FMT_YUV444P, 8},      {AV_PIX_FMT_YUV420P10LE, 10},
               {AV_PIX_FMT_YUV422P10LE, 10}, {AV_PIX_FMT_YUV444P10LE, 10},
               {AV_PIX_FMT_NV12, 8},         {AV_PIX_FMT_P010LE, 16},
               {AV_PIX_FMT_GRAY8, 8},        {AV_PIX_FMT_GRAY10LE, 10}};
  for (const auto& c : cases) {
    // 100.75 levels: 8-bit stores 101, 10-bit 403 (>> 2 = 100), P010 403 << 6 (>> 8 = 100).
    const Frame f = synth::render_frame(66, 40, c.format, [](int, int) { return 100.75; });
    const LumaView v = luma_of(f);
    EXPECT_EQ(v.width, 66) << av_get_pix_fmt_name(c.format);
    EXPECT_EQ(v.height, 40);
    EXPECT_EQ(v.bit_depth, c.bit_depth) << av_get_pix_fmt_name(c.format);
    EXPECT_EQ(sample8(v, 65, 39), c.bit_depth == 8 ? 101 : 100) << av_get_pix_fmt_name(c.format);
  }
}

TEST(LumaOf, RejectsRgbDeviceAndEmptyFrames) {
  EXPECT_THROW(luma_of(Frame::allocate(32, 32, AV_PIX_FMT_RGB24)), Error);
  AVFrame* device = av_frame_alloc();
  device->format = AV_PIX_FMT_CUDA;
  device->width = device->height = 32;
  try {
    luma_of(Frame::adopt(device));
    FAIL() << "a device frame was accepted";
  } catch (const Error& e) {
    EXPECT_NE(e.problem().find("device"), std::string::npos) << e.problem();
  }
  EXPECT_THROW(luma_of(Frame{}), Error);
}

TEST(AverageHash, MatchesTheReferenceDefinitionOnAlignedAndOddSizes) {
  for (const auto& [w, h] : {std::pair{320, 180}, {322, 182}, {1920, 1080}, {161, 91}, {64, 48}})
    for (int n : {8, 16, 32}) {
      const Frame f = noise_frame(w, h, AV_PIX_FMT_YUV420P, w + n);
      EXPECT_EQ(average_hash(luma_of(f), n), reference_hash(luma_of(f), n))
          << w << "x" << h << " " << n;
    }
  const Frame ten = noise_frame(160, 90, AV_PIX_FMT_YUV420P10LE, 3);
  EXPECT_EQ(average_hash(luma_of(ten), 16), reference_hash(luma_of(ten), 16));
}

TEST(AverageHash, BrightRightHalfSetsTheRightHalfBits) {
  const Frame f = synth::render_frame(160, 96, AV_PIX_FMT_GRAY8,
                                      [](int x, int) { return x < 80 ? 40.0 : 200.0; });
  const AverageHash h = average_hash(luma_of(f), 8);
  EXPECT_EQ(h.words[0], 0xF0F0F0F0F0F0F0F0ULL);
  EXPECT_EQ(h.unstable[0], 0u);
  const Frame flipped = synth::render_frame(160, 96, AV_PIX_FMT_GRAY8,
                                            [](int x, int) { return x < 80 ? 200.0 : 40.0; });
  EXPECT_EQ(hamming_distance(h, average_hash(luma_of(flipped), 8)), 64);
  EXPECT_THROW(average_hash(luma_of(f), 12), Error);
  EXPECT_THROW(average_hash(luma_of(Frame::allocate(6, 6, AV_PIX_FMT_GRAY8)), 8), Error);
}

TEST(MeasureDifference, MatchesTheReferenceAndKnownValues) {
  for (const auto& [w, h] : {std::pair{320, 180}, {322, 182}, {90, 60}}) {
    const Frame a = noise_frame(w, h, AV_PIX_FMT_YUV420P, 1),
                b = noise_frame(w, h, AV_PIX_FMT_YUV420P, 2);
    const DifferenceMeasures m = measure_difference(luma_of(a), luma_of(b));
    const DifferenceMeasures r = reference_measures(luma_of(a), luma_of(b));
    EXPECT_DOUBLE_EQ(m.mean_abs_diff, r.mean_abs_diff) << w;
    EXPECT_DOUBLE_EQ(m.signed_mean_diff, r.signed_mean_diff) << w;
    EXPECT_DOUBLE_EQ(m.max_block_mean_abs_diff, r.max_block_mean_abs_diff) << w;
  }
  // The motion measure on noise (no translation) and odd sizes, 8- and 10-bit.
  for (const auto& [w, h] : {std::pair{320, 180}, {322, 182}, {90, 61}, {17, 9}}) {
    for (AVPixelFormat fmt : {AV_PIX_FMT_YUV420P, AV_PIX_FMT_YUV420P10LE}) {
      const Frame a = noise_frame(w, h, fmt, 3), b = noise_frame(w, h, fmt, 4);
      const DifferenceMeasures m = measure_difference(luma_of(a), luma_of(b));
      const DifferenceMeasures r = reference_motion(luma_of(a), luma_of(b));
      EXPECT_NEAR(m.motion_shift_x, r.motion_shift_x, 1e-9) << w;
      EXPECT_NEAR(m.motion_shift_y, r.motion_shift_y, 1e-9) << w;
      EXPECT_NEAR(m.motion_explained, r.motion_explained, 1e-12) << w;
      EXPECT_NEAR(m.motion, r.motion, 1e-9) << w;
      if (w >= 90) {
        EXPECT_LT(m.motion, 0.05) << "independent noise is no translation";
      }
    }
  }
  // No interior sample: no motion.
  const Frame tiny_a = noise_frame(2, 2, AV_PIX_FMT_GRAY8, 1),
              tiny_b = noise_frame(2, 2, AV_PIX_FMT_GRAY8, 2);
  EXPECT_EQ(measure_difference(luma_of(tiny_a), luma_of(tiny_b)).motion, 0.0);
  // One 8x8 block 64 levels brighter on a 64x64 frame; a uniform 3-level shift.
  const Frame base = synth::render_frame(64, 64, AV_PIX_FMT_GRAY8, [](int, int) { return 100.0; });
  const Frame square = synth::render_frame(64, 64, AV_PIX_FMT_GRAY8, [](int x, int y) {
    return x >= 16 && x < 24 && y >= 8 && y < 16 ? 164.0 : 100.0;
  });
  const DifferenceMeasures m = measure_difference(luma_of(square), luma_of(base));
  EXPECT_DOUBLE_EQ(m.max_block_mean_abs_diff, 64.0);
  EXPECT_DOUBLE_EQ(m.mean_abs_diff, 1.0);
  EXPECT_DOUBLE_EQ(m.signed_mean_diff, 1.0);
  const Frame darker =
      synth::render_frame(64, 64, AV_PIX_FMT_YUV420P10LE, [](int, int) { return 97.0; });
  const DifferenceMeasures shift = measure_difference(luma_of(darker), luma_of(base));
  EXPECT_DOUBLE_EQ(shift.signed_mean_diff, -3.0);
  EXPECT_DOUBLE_EQ(shift.mean_abs_diff, 3.0);
  EXPECT_THROW(measure_difference(luma_of(base), luma_of(noise_frame(32, 32, AV_PIX_FMT_GRAY8, 1))),
               Error);
}

TEST(MeasureDifference, MotionFindsTheShiftOfASmoothPan) {
  // A smooth scene (no pixel-scale noise) moved by (-1, 0) and by (0, +0.5) pixels.
  const auto scene = [](double x, double y) {
    return 128 + 50 * std::sin(0.09 * x + 0.3) * std::cos(0.07 * y) + 20 * std::sin(0.05 * (x + y));
  };
  const auto frame = [&](double dx, double dy) {
    return synth::render_frame(160, 96, AV_PIX_FMT_GRAY10LE,
                               [&](int x, int y) { return scene(x - dx, y - dy); });
  };
  const Frame origin = frame(0, 0);
  const DifferenceMeasures left = measure_difference(luma_of(origin), luma_of(frame(-1, 0)));
  EXPECT_NEAR(left.motion_shift_x, -1.0, 0.15);
  EXPECT_NEAR(left.motion_shift_y, 0.0, 0.05);
  EXPECT_GT(left.motion_explained, 0.8);
  EXPECT_NEAR(left.motion, 1.0, 0.2);
  const DifferenceMeasures down = measure_difference(luma_of(origin), luma_of(frame(0, 0.5)));
  EXPECT_NEAR(down.motion_shift_x, 0.0, 0.05);
  EXPECT_NEAR(down.motion_shift_y, 0.5, 0.1);
  EXPECT_GT(down.motion, 0.3);
  EXPECT_EQ(measure_difference(luma_of(origin), luma_of(origin)).motion, 0.0);
}

TEST(MeasureDifference, ChangeLengthIsTheLongestGroupOfUnmaskedChangedBlocks) {
  // A flat dark ground (level 30); a thin vertical line 15 levels brighter, 2 px wide, from
  // row 12 to row 92 at x = 40 (81 px: blocks 1 to 11 of column 5).
  const auto ground = [](int, int) { return 30.0; };
  const auto line = [](int x, int y) {
    return x >= 40 && x < 42 && y >= 12 && y <= 92 ? 45.0 : 30.0;
  };
  const Frame flat = synth::render_frame(96, 112, AV_PIX_FMT_GRAY8, ground);
  const Frame streak = synth::render_frame(96, 112, AV_PIX_FMT_GRAY8, line);
  // Appearing and vanishing alike: 11 blocks of 8 rows, 88 px.
  EXPECT_DOUBLE_EQ(measure_difference(luma_of(flat), luma_of(streak)).change_length, 88.0);
  EXPECT_DOUBLE_EQ(measure_difference(luma_of(streak), luma_of(flat)).change_length, 88.0);
  // The same line fainter than change_min_rms (3 levels RMS per block: 2 px x 8 rows x d^2 / 64
  // = 4 d^2 / 16, so d = 5 gives 2.5 levels): no group.
  const Frame faint = synth::render_frame(96, 112, AV_PIX_FMT_GRAY8, [](int x, int y) {
    return x >= 40 && x < 42 && y >= 12 && y <= 92 ? 35.0 : 30.0;
  });
  EXPECT_DOUBLE_EQ(measure_difference(luma_of(flat), luma_of(faint)).change_length, 0.0);
  // Masked: the same change along a strong edge of the picture (a 100-level step at x = 40)
  // is re-coding noise there, not a new line.
  const auto edge = [](int x, int) { return x < 41 ? 30.0 : 130.0; };
  const Frame step = synth::render_frame(96, 112, AV_PIX_FMT_GRAY8, edge);
  const Frame step_line = synth::render_frame(96, 112, AV_PIX_FMT_GRAY8, [&](int x, int y) {
    return edge(x, y) + (x >= 40 && x < 42 && y >= 12 && y <= 92 ? 15.0 : 0.0);
  });
  EXPECT_DOUBLE_EQ(measure_difference(luma_of(step), luma_of(step_line)).change_length, 0.0);
  // A 6x6 square changing: one group of at most 2x2 blocks (16 px), under the threshold.
  const Frame square = synth::render_frame(96, 112, AV_PIX_FMT_GRAY8, [](int x, int y) {
    return x >= 45 && x < 51 && y >= 50 && y < 56 ? 60.0 : 30.0;
  });
  const double square_length = measure_difference(luma_of(flat), luma_of(square)).change_length;
  EXPECT_GT(square_length, 0.0);
  EXPECT_LE(square_length, 16.0);
  EXPECT_LT(square_length, default_thresholds().max_change_length);
}

TEST(DuplicateDetector, FrameAndPlaneOverloadsDecideAlike) {
  // 8-bit frames are kept by reference, other depths and caller planes as copies: same
  // decisions either way, in both scopes, with the window recycling buffers.
  for (AVPixelFormat fmt : {AV_PIX_FMT_YUV420P, AV_PIX_FMT_YUV420P10LE}) {
    synth::ClipSpec spec;
    spec.width = 96;
    spec.height = 64;
    spec.pix_fmt = fmt;
    const auto pattern = synth::duplicate_pattern(40, 0.4, 3);
    const auto clip = synth::pattern_clip(spec, pattern);
    for (Scope scope : {Scope::kConsecutive, Scope::kGlobal}) {
      DetectorOptions options;
      options.scope = scope;
      options.window = 3;
      DuplicateDetector by_frame(options), by_plane(options);
      int duplicates = 0;
      for (size_t i = 0; i < clip.size(); ++i) {
        const Decision f = by_frame.classify(static_cast<int64_t>(i), clip[i]);
        const Decision p = by_plane.classify(static_cast<int64_t>(i), luma_of(clip[i]));
        EXPECT_EQ(f.duplicate, p.duplicate) << i;
        EXPECT_EQ(f.source_index, p.source_index) << i;
        EXPECT_EQ(f.duplicate, static_cast<bool>(pattern[i])) << i;
        duplicates += f.duplicate;
      }
      EXPECT_EQ(duplicates, 16);
    }
  }
}

std::vector<Frame> pictures(int count) {
  synth::ClipSpec spec;
  spec.width = 160;
  spec.height = 90;
  spec.frames = count;
  return synth::distinct_clip(spec);
}

TEST(DuplicateDetector, GlobalScopeMapsToAnEarlierUniqueFrameWithinTheWindow) {
  const auto p = pictures(4);
  const std::vector<Frame> clip = {p[0], p[1], p[2], p[0], p[3], p[1]};
  DetectorOptions consecutive;
  DuplicateDetector c(consecutive);
  for (int i = 0; i < 6; ++i) EXPECT_FALSE(c.classify(i, luma_of(clip[i])).duplicate) << i;

  DetectorOptions global;
  global.scope = Scope::kGlobal;
  DuplicateDetector g(global);
  std::vector<Decision> d;
  for (int i = 0; i < 6; ++i) d.push_back(g.classify(i * 10, luma_of(clip[i])));
  EXPECT_TRUE(d[3].duplicate);
  EXPECT_EQ(d[3].source_index, 0);
  EXPECT_TRUE(d[5].duplicate);
  EXPECT_EQ(d[5].source_index, 10);
  EXPECT_EQ(d[0].duplicate + d[1].duplicate + d[2].duplicate + d[4].duplicate, 0);

  global.window = 2;  // frame 0 has left the window by frame 3
  DuplicateDetector small(global);
  for (int i = 0; i < 3; ++i) small.classify(i, luma_of(clip[i]));
  EXPECT_FALSE(small.classify(3, luma_of(clip[3])).duplicate);
}

TEST(DuplicateDetector, ResetMakesTheNextFrameUniqueAndOrderIsEnforced) {
  const auto p = pictures(2);
  DuplicateDetector d(DetectorOptions{});
  EXPECT_FALSE(d.classify(0, luma_of(p[0])).duplicate);
  const Decision again = d.classify(1, luma_of(p[0]));
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(again.source_index, 0);
  EXPECT_EQ(d.hash_candidates(), 1);
  EXPECT_THROW(d.classify(1, luma_of(p[0])), Error);
  d.reset();
  EXPECT_FALSE(d.classify(0, luma_of(p[0])).duplicate);  // a new segment may restart at 0
  EXPECT_TRUE(d.classify(1, luma_of(p[0])).duplicate);
  // A different size is never a duplicate.
  const Frame big =
      synth::render_frame(320, 180, AV_PIX_FMT_YUV420P, [](int, int) { return 90.0; });
  EXPECT_FALSE(d.classify(2, luma_of(big)).duplicate);
}

TEST(DuplicateDetector, RejectsBadOptions) {
  DetectorOptions o;
  o.hash_size = 12;
  EXPECT_THROW(DuplicateDetector{o}, UsageError);
  o = {};
  o.window = 0;
  o.scope = Scope::kGlobal;
  EXPECT_THROW(DuplicateDetector{o}, UsageError);
  o = {};
  o.hash_threshold = -1;
  EXPECT_THROW(DuplicateDetector{o}, UsageError);
  o = {};
  o.thresholds.max_block_mean_abs_diff = -2;
  EXPECT_THROW(DuplicateDetector{o}, UsageError);
  o = {};
  o.thresholds.max_motion = -0.1;
  EXPECT_THROW(DuplicateDetector{o}, UsageError);
}

}  // namespace
}  // namespace upframe::dedup
