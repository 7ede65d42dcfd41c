// The inner loops of the CPU duplicate detection as a table of functions (dav1d's DSP-table
// shape): filled with the plain C reference, then entries overridden per instruction set the
// CPU has. Every entry computes exactly the integers of the reference; tests/dedup/
// dedup_dsp_test.cpp checks each override against it on random and edge-case inputs, and
// `bench_dedup --benchmark_filter=BM_Dsp` times each.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "hash_math.hpp"  // same folder: also found from the CUDA tests, which lack src/

namespace upframe::dedup::detail {

struct Dsp {
  // Sums of each 8-sample group of rows [y0, y1) into group_sums[x / 8] (overwritten); copies
  // the rows to `copy` (rows packed, `width` bytes apart) when not null. width % 8 == 0.
  void (*group_sums)(const uint8_t* data, ptrdiff_t stride, int width, int y0, int y1,
                     uint8_t* copy, uint64_t* group_sums);
  // Sums of |a - b| of each 8-sample group of rows [y0, y1) into group_abs[x / 8]
  // (overwritten); when sum_a is not null, the sums of a and b are added to *sum_a, *sum_b.
  // width % 8 == 0.
  void (*group_abs_diff)(const uint8_t* a, ptrdiff_t a_stride, const uint8_t* b, ptrdiff_t b_stride,
                         int width, int y0, int y1, uint64_t* group_abs, uint64_t* sum_a,
                         uint64_t* sum_b);
  // Row y+1 of the motion pass: m2 = a + b (a, b: row y+1), then the vertical Sobel parts of
  // row y from m0, m1, m2 (m at rows y-1, y, y+1): smooth = m0 + 2 m1 + m2 and
  // diff = m2 - m0. All `width` columns.
  void (*sobel_row)(const uint8_t* a, const uint8_t* b, const int16_t* m0, const int16_t* m1,
                    int16_t* m2, int16_t* smooth, int16_t* diff, int width);
  // The motion samples of `groups` 8-column groups from column x over `rows` rows (at most
  // 15): group g (columns [x + 8g, x + 8g + 8)) into into[g]. Row k has its Sobel parts at
  // smooth + k * pitch, diff + k * pitch, and its samples at rows_a[k], rows_b[k].
  // 1 <= x and x + 8 * groups <= width - 1 (the neighbours are read).
  void (*motion_groups)(const int16_t* smooth, const int16_t* diff, ptrdiff_t pitch,
                        const uint8_t* const* rows_a, const uint8_t* const* rows_b, int rows, int x,
                        int groups, math::MotionSums* into);
};

// The C reference of Dsp::sobel_row (the overrides finish their rows' tails with it).
void sobel_row_c(const uint8_t* a, const uint8_t* b, const int16_t* m0, const int16_t* m1,
                 int16_t* m2, int16_t* smooth, int16_t* diff, int width);

// Instruction sets with overrides, lowest first.
enum class Isa { kC, kSse2 };
std::string isa_name(Isa isa);
// The sets this CPU runs (kC always).
std::vector<Isa> available_isas();
// The C reference overridden by every set up to `highest` that the CPU runs.
Dsp make_dsp(Isa highest);
// make_dsp(the highest available), made once.
const Dsp& dsp();

}  // namespace upframe::dedup::detail
