// What one CUDA thread of the duplicate-detection kernels computes (device_dedup.cu), as plain
// C++ functions: the kernels call them per thread, and tests/dedup calls them in loops over the
// same thread grid on the CPU, so the index arithmetic is checked against the CPU detector even
// where no GPU is present. Integers only: sums of integers are the same in any order, which
// is what makes the CUDA results bit-identical to the CPU ones (docs/INTERFACE.md).
#pragma once

#include <cstddef>
#include <cstdint>

#include "../hash_math.hpp"

namespace upframe::dedup::device_math {

// A luma plane: host or device memory, `bit_depth` as in LumaView (8: bytes; more: 16-bit
// words scaled to 8 bits by >> (bit_depth - 8), so P010 is 16 and yuv420p10le is 10).
struct Plane {
  const uint8_t* data = nullptr;
  ptrdiff_t pitch = 0;  // bytes between rows
  int width = 0;
  int height = 0;
  int bit_depth = 8;
};

// Sample (x, y) scaled to 8 bits, as the CPU's 8-bit copy holds it.
UPFRAME_HD inline int sample8(const Plane& p, int x, int y) {
  const uint8_t* row = p.data + static_cast<ptrdiff_t>(y) * p.pitch;
  if (p.bit_depth == 8) return row[x];
  return math::sample_to_8bit(reinterpret_cast<const uint16_t*>(row)[x], p.bit_depth);
}

// --- Average hash ----------------------------------------------------------------------------
// Thread grid: one thread block per (cell column cx, cell row cy, row slice), `lanes` threads
// each. A slice is a run of the cell's rows (cell_begin over the cell's height), a lane reads
// the columns x0 + lane, x0 + lane + lanes, ...: coalesced row reads.

// Slices per cell: cells of about 16 rows' work each, at least one.
UPFRAME_HD inline int hash_slices(int height, int n) {
  const int rows = height / n;  // the smallest cell height (>= 1: height >= n)
  return rows > 16 ? (rows + 15) / 16 : 1;
}

// Sum of the 8-bit samples lane `lane` of `lanes` reads in slice `slice` of cell (cx, cy).
UPFRAME_HD inline uint64_t hash_cell_part(const Plane& p, int n, int cx, int cy, int slice,
                                          int slices, int lane, int lanes) {
  const int x0 = math::cell_begin(cx, p.width, n), x1 = math::cell_begin(cx + 1, p.width, n);
  const int cy0 = math::cell_begin(cy, p.height, n), cy1 = math::cell_begin(cy + 1, p.height, n);
  const int y0 = cy0 + math::cell_begin(slice, cy1 - cy0, slices);
  const int y1 = cy0 + math::cell_begin(slice + 1, cy1 - cy0, slices);
  uint64_t sum = 0;
  for (int y = y0; y < y1; ++y)
    for (int x = x0 + lane; x < x1; x += lanes) sum += static_cast<uint64_t>(sample8(p, x, y));
  return sum;
}

// --- Difference measures ---------------------------------------------------------------------
// One thread per confirmation block (math::block_count per axis, cell_begin bounds): its sums
// of |a - b| and a - b. The totals are the sums over all blocks; the largest block mean is
// picked with better_block, whose order does not depend on the reduction order.

struct BlockDifference {
  uint64_t abs_sum = 0;
  int64_t signed_sum = 0;
};

UPFRAME_HD inline BlockDifference block_difference(const Plane& a, const Plane& b, int bx, int by) {
  const int blocks_x = math::block_count(a.width), blocks_y = math::block_count(a.height);
  const int x0 = math::cell_begin(bx, a.width, blocks_x);
  const int x1 = math::cell_begin(bx + 1, a.width, blocks_x);
  const int y0 = math::cell_begin(by, a.height, blocks_y);
  const int y1 = math::cell_begin(by + 1, a.height, blocks_y);
  BlockDifference d;
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x) {
      const int diff = sample8(a, x, y) - sample8(b, x, y);
      d.abs_sum += static_cast<uint64_t>(diff < 0 ? -diff : diff);
      d.signed_sum += diff;
    }
  return d;
}

UPFRAME_HD inline int64_t block_area(int width, int height, int index) {
  const int blocks_x = math::block_count(width), blocks_y = math::block_count(height);
  const int bx = index % blocks_x, by = index / blocks_x;
  return static_cast<int64_t>(math::cell_begin(bx + 1, width, blocks_x) -
                              math::cell_begin(bx, width, blocks_x)) *
         (math::cell_begin(by + 1, height, blocks_y) - math::cell_begin(by, height, blocks_y));
}

// A candidate for the largest block mean; index -1: none yet.
struct BlockMax {
  uint64_t abs_sum = 0;
  int64_t area = 1;
  int64_t index = -1;
};

// The better of two candidates: the larger mean, and on equal means the lower block index
// (row-major). The CPU scans blocks row-major and replaces its maximum only on a strictly
// larger mean, so it keeps exactly this block. A total order: any reduction tree agrees.
UPFRAME_HD inline BlockMax better_block(const BlockMax& x, const BlockMax& y) {
  if (x.index < 0) return y;
  if (y.index < 0) return x;
  if (math::block_mean_greater(x.abs_sum, x.area, y.abs_sum, y.area)) return x;
  if (math::block_mean_greater(y.abs_sum, y.area, x.abs_sum, x.area)) return y;
  return x.index < y.index ? x : y;
}

// The CPU's (max_block_abs_sum, max_block_area): it starts from (0, 1) and keeps it while no
// block has a non-zero difference.
UPFRAME_HD inline BlockMax cpu_block_max(const BlockMax& best) {
  if (best.index < 0 || best.abs_sum == 0) return BlockMax{0, 1, best.index};
  return best;
}

// --- Motion sums -----------------------------------------------------------------------------
// One interior sample (1 <= x < W-1, 1 <= y < H-1): Sobel gradients of m = a + b around it and
// d = b - a, added to `sums` (hash_math.hpp's definitions).
UPFRAME_HD inline void add_motion_at(const Plane& a, const Plane& b, int x, int y,
                                     math::MotionSums& sums) {
  int m[3][3];
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c)
      m[r][c] = sample8(a, x + c - 1, y + r - 1) + sample8(b, x + c - 1, y + r - 1);
  math::add_motion_sample(sums, math::sobel_x(m), math::sobel_y(m),
                          sample8(b, x, y) - sample8(a, x, y));
}

// One thread per confirmation block (block_count / cell_begin bounds, as block_difference):
// the motion sums of the block's interior samples, as detail::motion_field_8bit's blocks.
UPFRAME_HD inline math::MotionSums block_motion(const Plane& a, const Plane& b, int bx, int by) {
  const int blocks_x = math::block_count(a.width), blocks_y = math::block_count(a.height);
  const int x0 = math::cell_begin(bx, a.width, blocks_x);
  const int x1 = math::cell_begin(bx + 1, a.width, blocks_x);
  const int y0 = math::cell_begin(by, a.height, blocks_y);
  const int y1 = math::cell_begin(by + 1, a.height, blocks_y);
  math::MotionSums sums;
  for (int y = y0 > 1 ? y0 : 1; y < y1 && y < a.height - 1; ++y)
    for (int x = x0 > 1 ? x0 : 1; x < x1 && x < a.width - 1; ++x) add_motion_at(a, b, x, y, sums);
  return sums;
}

}  // namespace upframe::dedup::device_math
