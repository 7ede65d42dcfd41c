// Every override in the duplicate-detection DSP table (src/dedup/dsp.hpp) against the C
// reference, on random and edge-case inputs (checkasm's shape): the same integers or the test
// fails. Timing each against the reference: bench_dedup --benchmark_filter=BM_Dsp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../../src/dedup/dsp.hpp"

namespace upframe::dedup::detail {
namespace {

// The inputs each function is checked on: random samples, and the extremes where sums and
// 16-bit intermediates are largest (all 255, 0/255 stripes and checkers, 255 against 0).
enum class Fill { kRandom, kZero, kMax, kStripes, kChecker, kRamp };
constexpr Fill kFills[] = {Fill::kRandom,  Fill::kZero,    Fill::kMax,
                           Fill::kStripes, Fill::kChecker, Fill::kRamp};

std::vector<uint8_t> plane(Fill fill, int stride, int height, uint32_t seed) {
  std::vector<uint8_t> p(static_cast<size_t>(stride) * height);
  std::mt19937 rng(seed);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < stride; ++x) {
      uint8_t v = 0;
      switch (fill) {
        case Fill::kRandom:
          v = static_cast<uint8_t>(rng());
          break;
        case Fill::kZero:
          v = 0;
          break;
        case Fill::kMax:
          v = 255;
          break;
        case Fill::kStripes:
          v = (x + static_cast<int>(seed)) % 2 ? 255 : 0;
          break;
        case Fill::kChecker:
          v = (x + y + static_cast<int>(seed)) % 2 ? 255 : 0;
          break;
        case Fill::kRamp:
          v = static_cast<uint8_t>(x * 7 + y * 3 + static_cast<int>(seed));
          break;
      }
      p[static_cast<size_t>(y) * stride + x] = v;
    }
  return p;
}

// The tables to check: one per instruction set above C that this CPU runs.
std::vector<std::pair<std::string, Dsp>> fast_tables() {
  std::vector<std::pair<std::string, Dsp>> tables;
  for (const Isa isa : available_isas())
    if (isa != Isa::kC) tables.emplace_back(isa_name(isa), make_dsp(isa));
  return tables;
}

constexpr int kWidths[] = {8, 16, 24, 40, 64, 328, 1920};

TEST(DedupDsp, TheDetectorUsesTheHighestTable) {
  const Dsp best = make_dsp(available_isas().back());
  EXPECT_EQ(dsp().group_sums, best.group_sums);
  EXPECT_EQ(dsp().motion_groups, best.motion_groups);
#if defined(__x86_64__)
  // SSE2 is x86-64's baseline: the fast paths must be there, or the test checks nothing.
  ASSERT_FALSE(fast_tables().empty());
  EXPECT_NE(make_dsp(Isa::kSse2).group_sums, make_dsp(Isa::kC).group_sums);
#endif
}

TEST(DedupDsp, GroupSumsMatchTheReference) {
  const Dsp ref = make_dsp(Isa::kC);
  for (const auto& [name, fast] : fast_tables())
    for (const Fill fill : kFills)
      for (const int width : kWidths) {
        const int stride = width + 24, height = 20;
        const auto data = plane(fill, stride, height, static_cast<uint32_t>(width));
        for (const auto& [y0, y1] : {std::pair{0, 1}, {3, 11}, {0, 20}, {19, 20}}) {
          for (const bool with_copy : {false, true}) {
            std::vector<uint64_t> expected(width / 8, 99), got(width / 8, 7);
            std::vector<uint8_t> copy_expected(static_cast<size_t>(width) * height, 1),
                copy_got(static_cast<size_t>(width) * height, 1);
            ref.group_sums(data.data(), stride, width, y0, y1,
                           with_copy ? copy_expected.data() : nullptr, expected.data());
            fast.group_sums(data.data(), stride, width, y0, y1,
                            with_copy ? copy_got.data() : nullptr, got.data());
            EXPECT_EQ(got, expected) << name << " width " << width << " rows " << y0 << ".." << y1;
            EXPECT_EQ(copy_got, copy_expected) << name << " copy, width " << width;
          }
        }
      }
}

TEST(DedupDsp, GroupAbsDiffMatchesTheReference) {
  const Dsp ref = make_dsp(Isa::kC);
  for (const auto& [name, fast] : fast_tables())
    for (const Fill fill_a : kFills)
      for (const Fill fill_b : {Fill::kRandom, Fill::kZero, Fill::kMax, Fill::kChecker})
        for (const int width : kWidths) {
          const int stride_a = width + 8, stride_b = width + 40, height = 16;
          const auto a = plane(fill_a, stride_a, height, 1);
          const auto b = plane(fill_b, stride_b, height, 2);
          for (const bool totals : {false, true}) {
            std::vector<uint64_t> expected(width / 8, 5), got(width / 8, 6);
            uint64_t sum_a_expected = 11, sum_b_expected = 13, sum_a_got = 11, sum_b_got = 13;
            ref.group_abs_diff(a.data(), stride_a, b.data(), stride_b, width, 2, 15,
                               expected.data(), totals ? &sum_a_expected : nullptr,
                               totals ? &sum_b_expected : nullptr);
            fast.group_abs_diff(a.data(), stride_a, b.data(), stride_b, width, 2, 15, got.data(),
                                totals ? &sum_a_got : nullptr, totals ? &sum_b_got : nullptr);
            EXPECT_EQ(got, expected) << name << " width " << width;
            EXPECT_EQ(sum_a_got, sum_a_expected) << name << " width " << width;
            EXPECT_EQ(sum_b_got, sum_b_expected) << name << " width " << width;
          }
        }
}

TEST(DedupDsp, SobelRowMatchesTheReference) {
  const Dsp ref = make_dsp(Isa::kC);
  for (const auto& [name, fast] : fast_tables())
    for (const Fill fill : kFills)
      for (const int width : {3, 8, 15, 16, 17, 40, 333, 1920}) {
        const auto a = plane(fill, width, 1, 3);
        const auto b = plane(fill == Fill::kRandom ? Fill::kMax : Fill::kRandom, width, 1, 4);
        // m rows as the motion pass holds them: sums of two 8-bit rows (0..510).
        std::vector<int16_t> m0(width), m1(width);
        const auto m_rows = plane(fill, width, 4, 5);
        for (int x = 0; x < width; ++x) {
          m0[x] = static_cast<int16_t>(m_rows[x] + m_rows[width + x]);
          m1[x] = static_cast<int16_t>(m_rows[2 * width + x] + m_rows[3 * width + x]);
        }
        std::vector<int16_t> m2_e(width), smooth_e(width), diff_e(width);
        std::vector<int16_t> m2_g(width), smooth_g(width), diff_g(width);
        ref.sobel_row(a.data(), b.data(), m0.data(), m1.data(), m2_e.data(), smooth_e.data(),
                      diff_e.data(), width);
        fast.sobel_row(a.data(), b.data(), m0.data(), m1.data(), m2_g.data(), smooth_g.data(),
                       diff_g.data(), width);
        EXPECT_EQ(m2_g, m2_e) << name << " width " << width;
        EXPECT_EQ(smooth_g, smooth_e) << name << " width " << width;
        EXPECT_EQ(diff_g, diff_e) << name << " width " << width;
      }
}

bool operator==(const math::MotionSums& p, const math::MotionSums& q) {
  return p.gxx == q.gxx && p.gxy == q.gxy && p.gyy == q.gyy && p.gxd == q.gxd && p.gyd == q.gyd &&
         p.dd == q.dd && p.gmm == q.gmm;
}

TEST(DedupDsp, MotionGroupsMatchTheReference) {
  const Dsp ref = make_dsp(Isa::kC);
  constexpr int kWidth = 48, kRows = 15;
  for (const auto& [name, fast] : fast_tables())
    for (const Fill fill : kFills) {
      // Sobel parts at their extremes: smooth within 0..2040, diff within -510..510.
      std::mt19937 rng(static_cast<uint32_t>(fill));
      std::vector<int16_t> smooth(static_cast<size_t>(kWidth) * kRows),
          diff(static_cast<size_t>(kWidth) * kRows);
      const auto pattern = plane(fill, kWidth, kRows, 6);
      for (size_t i = 0; i < smooth.size(); ++i) {
        smooth[i] = static_cast<int16_t>(pattern[i] * 8);
        diff[i] = static_cast<int16_t>(fill == Fill::kRandom ? static_cast<int>(rng() % 1021) - 510
                                                             : (pattern[i] ? 510 : -510));
      }
      const auto a = plane(fill, kWidth, kRows, 7);
      const auto b = plane(fill == Fill::kZero ? Fill::kMax : Fill::kZero, kWidth, kRows, 8);
      const uint8_t* rows_a[kRows];
      const uint8_t* rows_b[kRows];
      for (int k = 0; k < kRows; ++k) {
        rows_a[k] = a.data() + k * kWidth;
        rows_b[k] = b.data() + k * kWidth;
      }
      for (const int rows : {1, 8, kRows})
        for (const auto& [x, groups] :
             {std::pair{1, 1}, {8, 1}, {16, 2}, {kWidth - 9, 1}, {1, 5}}) {
          // Adds to these.
          std::vector<math::MotionSums> expected(groups, {1, 2, 3, 4, 5, 6, 7}), got = expected;
          ref.motion_groups(smooth.data(), diff.data(), kWidth, rows_a, rows_b, rows, x, groups,
                            expected.data());
          fast.motion_groups(smooth.data(), diff.data(), kWidth, rows_a, rows_b, rows, x, groups,
                             got.data());
          for (int g = 0; g < groups; ++g)
            EXPECT_TRUE(got[g] == expected[g])
                << name << " rows " << rows << " x " << x << " group " << g;
        }
    }
}

}  // namespace
}  // namespace upframe::dedup::detail
