// The C reference of the DSP table (dsp.hpp) and the table's assembly per instruction set.
#include "dedup/dsp.hpp"

#include <algorithm>

namespace upframe::dedup::detail {

void init_dsp_sse2(Dsp& dsp);  // dsp_sse2.cpp (x86-64 builds)

namespace {

void group_sums_c(const uint8_t* data, ptrdiff_t stride, int width, int y0, int y1, uint8_t* copy,
                  uint64_t* group_sums) {
  std::fill(group_sums, group_sums + width / 8, uint64_t{0});
  for (int y = y0; y < y1; ++y) {
    const uint8_t* row = data + y * stride;
    for (int x = 0; x < width; ++x) group_sums[x / 8] += row[x];
    if (copy) std::copy(row, row + width, copy + static_cast<ptrdiff_t>(y) * width);
  }
}

void group_abs_diff_c(const uint8_t* a, ptrdiff_t a_stride, const uint8_t* b, ptrdiff_t b_stride,
                      int width, int y0, int y1, uint64_t* group_abs, uint64_t* sum_a,
                      uint64_t* sum_b) {
  std::fill(group_abs, group_abs + width / 8, uint64_t{0});
  for (int y = y0; y < y1; ++y) {
    const uint8_t* ra = a + y * a_stride;
    const uint8_t* rb = b + y * b_stride;
    for (int x = 0; x < width; ++x) {
      group_abs[x / 8] += math::abs_diff(ra[x], rb[x]);
      if (sum_a) {
        *sum_a += ra[x];
        *sum_b += rb[x];
      }
    }
  }
}

void motion_groups_c(const int16_t* smooth, const int16_t* diff, ptrdiff_t pitch,
                     const uint8_t* const* rows_a, const uint8_t* const* rows_b, int rows, int x,
                     int groups, math::MotionSums* into) {
  for (int k = 0; k < rows; ++k) {
    const int16_t* s = smooth + k * pitch;
    const int16_t* d = diff + k * pitch;
    for (int i = x; i < x + 8 * groups; ++i) {
      const int gx = s[i + 1] - s[i - 1];
      const int gy = d[i - 1] + 2 * d[i] + d[i + 1];
      math::add_motion_sample(into[(i - x) / 8], gx, gy,
                              static_cast<int>(rows_b[k][i]) - rows_a[k][i]);
    }
  }
}

}  // namespace

void sobel_row_c(const uint8_t* a, const uint8_t* b, const int16_t* m0, const int16_t* m1,
                 int16_t* m2, int16_t* smooth, int16_t* diff, int width) {
  for (int x = 0; x < width; ++x) {
    m2[x] = static_cast<int16_t>(a[x] + b[x]);
    smooth[x] = static_cast<int16_t>(m0[x] + 2 * m1[x] + m2[x]);
    diff[x] = static_cast<int16_t>(m2[x] - m0[x]);
  }
}

std::string isa_name(Isa isa) {
  switch (isa) {
    case Isa::kC:
      return "c";
    case Isa::kSse2:
      return "sse2";
  }
  return "?";
}

std::vector<Isa> available_isas() {
  std::vector<Isa> isas{Isa::kC};
#if defined(__x86_64__)
  if (__builtin_cpu_supports("sse2")) isas.push_back(Isa::kSse2);
#endif
  return isas;
}

Dsp make_dsp(Isa highest) {
  Dsp dsp{group_sums_c, group_abs_diff_c, sobel_row_c, motion_groups_c};
  for (const Isa isa : available_isas()) {
    if (static_cast<int>(isa) > static_cast<int>(highest)) break;
#if defined(__x86_64__)
    if (isa == Isa::kSse2) init_dsp_sse2(dsp);
#endif
  }
  return dsp;
}

const Dsp& dsp() {
  static const Dsp table = make_dsp(available_isas().back());
  return table;
}

}  // namespace upframe::dedup::detail
