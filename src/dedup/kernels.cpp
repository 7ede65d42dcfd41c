#include "dedup/kernels.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "dedup/dsp.hpp"
#include "dedup/hash_math.hpp"
#include "upframe/error.hpp"

namespace upframe::dedup::detail {

namespace {

constexpr int kChunk = 16;  // samples per inner loop: one SSE register of bytes

void convert_row_to_8bit(const uint8_t* in_bytes, uint8_t* __restrict out, int width,
                         int bit_depth) {
  const auto* in = reinterpret_cast<const uint16_t*>(in_bytes);
  const int shift = bit_depth - 8;
  int x = 0;
  for (; x + kChunk <= width; x += kChunk)
    for (int k = 0; k < kChunk; ++k) out[x + k] = static_cast<uint8_t>(in[x + k] >> shift);
  for (; x < width; ++x) out[x] = math::sample_to_8bit(in[x], bit_depth);
}

// colsum[x] += row[x]
void accumulate_row(const uint8_t* __restrict row, uint16_t* __restrict colsum, int width) {
  int x = 0;
  for (; x + kChunk <= width; x += kChunk)
    for (int k = 0; k < kChunk; ++k)
      colsum[x + k] = static_cast<uint16_t>(colsum[x + k] + row[x + k]);
  for (; x < width; ++x) colsum[x] = static_cast<uint16_t>(colsum[x] + row[x]);
}

// Adds the column sums of each hash cell column to `cell_sums` (one row of cells).
void flush_columns(uint16_t* colsum, int width, int hash_size, uint64_t* cell_sums) {
  for (int cx = 0; cx < hash_size; ++cx) {
    const int x0 = math::cell_begin(cx, width, hash_size);
    const int x1 = math::cell_begin(cx + 1, width, hash_size);
    uint64_t sum = 0;
    for (int x = x0; x < x1; ++x) sum += colsum[x];
    cell_sums[cx] += sum;
  }
  std::fill(colsum, colsum + width, uint16_t{0});
}

// The DSP table's group functions (dsp.hpp) serve the usual frame sizes: they sum 8-sample
// groups, so the hash and the block measure need no per-column arrays. They compute exactly
// the same integer sums as the generic loops here (tests compare both with a plain reference).

// The fast paths need every hash cell / block to start on an 8-sample group.
bool cells_aligned_to_groups(int width, int cells) {
  if (width % 8 != 0) return false;
  for (int i = 0; i <= cells; ++i)
    if (math::cell_begin(i, width, cells) % 8 != 0) return false;
  return true;
}

}  // namespace

void validate(const LumaView& luma) {
  if (!luma.data || luma.width <= 0 || luma.height <= 0)
    throw Error({}, "duplicate detection got an empty luma plane", ExitCode::kProcessingFailed,
                "detect");
  if (luma.bit_depth < 8 || luma.bit_depth > 16)
    throw Error(
        {},
        "duplicate detection cannot read " + std::to_string(luma.bit_depth) + "-bit luma samples",
        ExitCode::kProcessingFailed, "detect");
  const int bytes = luma.bit_depth > 8 ? 2 : 1;
  if (luma.linesize < luma.width * bytes)
    throw Error({}, "luma plane rows are shorter than its width", ExitCode::kProcessingFailed,
                "detect");
}

void copy_to_8bit(const LumaView& luma, uint8_t* out) {
  validate(luma);
  for (int y = 0; y < luma.height; ++y) {
    const uint8_t* src = luma.data + static_cast<ptrdiff_t>(y) * luma.linesize;
    uint8_t* dst = out + static_cast<ptrdiff_t>(y) * luma.width;
    if (luma.bit_depth > 8)
      convert_row_to_8bit(src, dst, luma.width, luma.bit_depth);
    else
      std::memcpy(dst, src, luma.width);
  }
}

void validate_hash_request(const LumaView& luma, int hash_size) {
  validate(luma);
  if (hash_size != 8 && hash_size != 16 && hash_size != 32)
    throw UsageError({}, "hash size must be 8, 16 or 32, got " + std::to_string(hash_size));
  if (luma.width < hash_size || luma.height < hash_size)
    throw Error({},
                "a " + std::to_string(luma.width) + "x" + std::to_string(luma.height) +
                    " frame is too small for a " + std::to_string(hash_size) + "x" +
                    std::to_string(hash_size) + " hash",
                ExitCode::kProcessingFailed, "detect");
}

AverageHash hash_and_copy(const LumaView& luma, int hash_size, uint8_t* copy_8bit,
                          uint64_t* luma_sum) {
  validate_hash_request(luma, hash_size);
  const int width = luma.width, height = luma.height;
  if (luma.bit_depth > 8) {
    // Scale to 8 bits once (into the copy the caller wants, or a temporary), then hash that.
    std::vector<uint8_t> temporary;
    uint8_t* plane = copy_8bit;
    if (!plane) {
      temporary.resize(static_cast<size_t>(width) * height);
      plane = temporary.data();
    }
    copy_to_8bit(luma, plane);
    const LumaView view8{plane, width, width, height, 8};
    return hash_and_copy(view8, hash_size, nullptr, luma_sum);
  }

  uint64_t cell_sums[32 * 32] = {};
  if (cells_aligned_to_groups(width, hash_size)) {
    const Dsp& table = dsp();
    std::vector<uint64_t> groups(width / 8);
    for (int cy = 0; cy < hash_size; ++cy) {
      table.group_sums(luma.data, luma.linesize, width, math::cell_begin(cy, height, hash_size),
                       math::cell_begin(cy + 1, height, hash_size), copy_8bit, groups.data());
      for (int cx = 0; cx < hash_size; ++cx) {
        const int g0 = math::cell_begin(cx, width, hash_size) / 8;
        const int g1 = math::cell_begin(cx + 1, width, hash_size) / 8;
        for (int g = g0; g < g1; ++g) cell_sums[cy * hash_size + cx] += groups[g];
      }
    }
  } else {
    // Column sums over up to 256 rows fit 16 bits (256 * 255 < 65536); flushed into the
    // cells at the end of each cell row, or earlier for very tall cells.
    constexpr int kMaxRowsPerFlush = 256;
    std::vector<uint16_t> colsum(width, 0);
    for (int cy = 0; cy < hash_size; ++cy) {
      const int y0 = math::cell_begin(cy, height, hash_size);
      const int y1 = math::cell_begin(cy + 1, height, hash_size);
      int rows_in_columns = 0;
      for (int y = y0; y < y1; ++y) {
        const uint8_t* row = luma.data + static_cast<ptrdiff_t>(y) * luma.linesize;
        if (copy_8bit) std::memcpy(copy_8bit + static_cast<ptrdiff_t>(y) * width, row, width);
        accumulate_row(row, colsum.data(), width);
        if (++rows_in_columns == kMaxRowsPerFlush) {
          flush_columns(colsum.data(), width, hash_size, cell_sums + cy * hash_size);
          rows_in_columns = 0;
        }
      }
      flush_columns(colsum.data(), width, hash_size, cell_sums + cy * hash_size);
    }
  }
  if (luma_sum) {
    *luma_sum = 0;
    for (int cell = 0; cell < hash_size * hash_size; ++cell) *luma_sum += cell_sums[cell];
  }

  AverageHash hash;
  hash.size = hash_size;
  math::hash_from_cell_sums(cell_sums, width, height, hash_size, kUnstableMargin, hash.words.data(),
                            hash.unstable.data());
  return hash;
}

DifferenceMeasures DifferenceSums::measures() const {
  DifferenceMeasures m;
  const double count = static_cast<double>(pixel_count);
  m.mean_abs_diff = static_cast<double>(abs_sum) / count;
  m.signed_mean_diff = static_cast<double>(signed_sum) / count;
  m.max_block_mean_abs_diff =
      static_cast<double>(max_block_abs_sum) / static_cast<double>(max_block_area);
  return m;
}

namespace {

// Early stop of the difference pass: once the mean or one block is over its limit the frame
// is not a duplicate, whatever the remaining rows hold.
struct StopLimits {
  double max_mean_abs_diff;
  double max_block_mean_abs_diff;
};

StopLimits stop_limits(const Thresholds& thresholds) {
  return {thresholds.max_mean_abs_diff, thresholds.max_block_mean_abs_diff};
}

bool over_limits(const DifferenceSums& sums, const StopLimits* limits) {
  if (!limits) return false;
  return static_cast<double>(sums.abs_sum) / static_cast<double>(sums.pixel_count) >
             limits->max_mean_abs_diff ||
         static_cast<double>(sums.max_block_abs_sum) / static_cast<double>(sums.max_block_area) >
             limits->max_block_mean_abs_diff;
}

// `stopped` (if not null) is set when the pass ended early because of `limits`.
DifferenceSums difference_8bit_impl(const uint8_t* a, int a_stride, const uint8_t* b, int b_stride,
                                    int width, int height, const uint64_t* sum_a,
                                    const uint64_t* sum_b, const StopLimits* limits,
                                    bool* stopped) {
  if (cells_aligned_to_groups(width, math::block_count(width))) {  // blocks are 8-sample groups
    const Dsp& table = dsp();
    const int blocks_y = math::block_count(height);
    std::vector<uint64_t> group_abs(width / 8);
    uint64_t total_a = 0, total_b = 0;
    const bool need_totals = !sum_a || !sum_b;
    DifferenceSums sums;
    sums.pixel_count = static_cast<int64_t>(width) * height;
    for (int by = 0; by < blocks_y; ++by) {
      const int y0 = math::cell_begin(by, height, blocks_y);
      const int y1 = math::cell_begin(by + 1, height, blocks_y);
      table.group_abs_diff(a, a_stride, b, b_stride, width, y0, y1, group_abs.data(),
                           need_totals ? &total_a : nullptr, need_totals ? &total_b : nullptr);
      const int64_t area = static_cast<int64_t>(y1 - y0) * 8;
      for (const uint64_t block_abs : group_abs) {
        if (math::block_mean_greater(block_abs, area, sums.max_block_abs_sum,
                                     sums.max_block_area)) {
          sums.max_block_abs_sum = block_abs;
          sums.max_block_area = area;
        }
        sums.abs_sum += block_abs;
      }
      if (over_limits(sums, limits)) {
        *stopped = true;
        return sums;
      }
    }
    sums.signed_sum = static_cast<int64_t>(need_totals ? total_a : *sum_a) -
                      static_cast<int64_t>(need_totals ? total_b : *sum_b);
    return sums;
  }
  // Per block row, per column: sum of |a-b| and of a-b. A block row has fewer than 16 rows
  // (blocks are 8..15 samples high), so 16-bit column sums cannot overflow.
  std::vector<uint16_t> abs_columns(width, 0);
  std::vector<int16_t> signed_columns(width, 0);
  const int blocks_x = math::block_count(width), blocks_y = math::block_count(height);
  DifferenceSums sums;
  sums.pixel_count = static_cast<int64_t>(width) * height;
  for (int by = 0; by < blocks_y; ++by) {
    const int y0 = math::cell_begin(by, height, blocks_y);
    const int y1 = math::cell_begin(by + 1, height, blocks_y);
    uint16_t* __restrict abs_col = abs_columns.data();
    int16_t* __restrict signed_col = signed_columns.data();
    for (int y = y0; y < y1; ++y) {
      const uint8_t* __restrict row_a = a + static_cast<ptrdiff_t>(y) * a_stride;
      const uint8_t* __restrict row_b = b + static_cast<ptrdiff_t>(y) * b_stride;
      int x = 0;
      for (; x + kChunk <= width; x += kChunk) {
        for (int k = 0; k < kChunk; ++k) {
          const int16_t d = math::signed_diff(row_a[x + k], row_b[x + k]);
          signed_col[x + k] = static_cast<int16_t>(signed_col[x + k] + d);
          abs_col[x + k] = static_cast<uint16_t>(abs_col[x + k] + (d < 0 ? -d : d));
        }
      }
      for (; x < width; ++x) {
        signed_col[x] = static_cast<int16_t>(signed_col[x] + math::signed_diff(row_a[x], row_b[x]));
        abs_col[x] = static_cast<uint16_t>(abs_col[x] + math::abs_diff(row_a[x], row_b[x]));
      }
    }
    const int64_t rows = y1 - y0;
    for (int bx = 0; bx < blocks_x; ++bx) {
      const int x0 = math::cell_begin(bx, width, blocks_x);
      const int x1 = math::cell_begin(bx + 1, width, blocks_x);
      uint64_t block_abs = 0;
      int64_t block_signed = 0;
      for (int x = x0; x < x1; ++x) {
        block_abs += abs_col[x];
        block_signed += signed_col[x];
      }
      const int64_t area = rows * (x1 - x0);
      if (math::block_mean_greater(block_abs, area, sums.max_block_abs_sum, sums.max_block_area)) {
        sums.max_block_abs_sum = block_abs;
        sums.max_block_area = area;
      }
      sums.abs_sum += block_abs;
      sums.signed_sum += block_signed;
    }
    std::fill(abs_columns.begin(), abs_columns.end(), uint16_t{0});
    std::fill(signed_columns.begin(), signed_columns.end(), int16_t{0});
    if (over_limits(sums, limits)) {
      *stopped = true;
      return sums;
    }
  }
  return sums;
}

}  // namespace

DifferenceSums difference_8bit(const uint8_t* a, int a_stride, const uint8_t* b, int b_stride,
                               int width, int height, const uint64_t* sum_a,
                               const uint64_t* sum_b) {
  return difference_8bit_impl(a, a_stride, b, b_stride, width, height, sum_a, sum_b, nullptr,
                              nullptr);
}

namespace {

// One row of m = a + b (int16).
void sum_rows(const uint8_t* __restrict a, const uint8_t* __restrict b, int16_t* __restrict m,
              int width) {
  for (int x = 0; x < width; ++x) m[x] = static_cast<int16_t>(a[x] + b[x]);
}

// Adds the samples x in [x0, x1) of one row (1 <= x0, x1 <= width - 1): the frame's first and
// last block columns and sizes whose blocks are not 8-sample groups.
void motion_row_scalar(const int16_t* smooth, const int16_t* diff, const uint8_t* a,
                       const uint8_t* b, int x0, int x1, math::MotionSums& sums) {
  for (int x = x0; x < x1; ++x) {
    const int gx = smooth[x + 1] - smooth[x - 1];
    const int gy = diff[x - 1] + 2 * diff[x] + diff[x + 1];
    math::add_motion_sample(sums, gx, gy, static_cast<int>(b[x]) - static_cast<int>(a[x]));
  }
}

}  // namespace

void motion_field_8bit(const uint8_t* a, int a_stride, const uint8_t* b, int b_stride, int width,
                       int height, MotionField& field) {
  field.blocks_x = math::block_count(width);
  field.blocks_y = math::block_count(height);
  field.total = {};
  if (width < 3 || height < 3) {  // no interior sample
    field.blocks.assign(static_cast<size_t>(field.blocks_x) * field.blocks_y, {});
    return;
  }
  // Every block is written once, when its block row is complete (no clearing pass).
  field.blocks.resize(static_cast<size_t>(field.blocks_x) * field.blocks_y);
  // The current block row's sums, 64-bit while it fills.
  thread_local std::vector<math::MotionSums> row_sums;
  row_sums.assign(static_cast<size_t>(field.blocks_x), math::MotionSums{});
  // Rolling rows of m (y-1, y, y+1), and the Sobel column terms (smooth, diff) of every row of
  // the current block row (at most 15): the DSP groups then run down a block's rows with
  // their sums in registers. About 120 KB at 1920 wide: in L2.
  constexpr int kMaxBlockRows = 16;
  thread_local std::vector<int16_t> buffer;
  buffer.resize(static_cast<size_t>(width) * (3 + 2 * kMaxBlockRows));
  int16_t* m[3] = {buffer.data(), buffer.data() + width,
                   buffer.data() + static_cast<ptrdiff_t>(2) * width};
  const auto smooth_row = [&](int k) {
    return buffer.data() + static_cast<ptrdiff_t>(3 + k) * width;
  };
  const auto diff_row = [&](int k) {
    return buffer.data() + static_cast<ptrdiff_t>(3 + kMaxBlockRows + k) * width;
  };
  const uint8_t* band_a[kMaxBlockRows];
  const uint8_t* band_b[kMaxBlockRows];
  int band_rows = 0;
  const auto row = [](const uint8_t* plane, int stride, int y) {
    return plane + static_cast<ptrdiff_t>(y) * stride;
  };
  // Block column of each sample column (blocks of 8 to 15 samples, cell_begin bounds).
  std::vector<int> column_block(width);
  for (int bx = 0; bx < field.blocks_x; ++bx)
    for (int x = math::cell_begin(bx, width, field.blocks_x);
         x < math::cell_begin(bx + 1, width, field.blocks_x); ++x)
      column_block[x] = bx;
  // Blocks exactly 8 wide: one DSP group a block; the first and last groups hold the
  // non-interior columns 0 and width - 1 and take the scalar loop.
  const Dsp& table = dsp();
  const bool groups = cells_aligned_to_groups(width, field.blocks_x) && field.blocks_x >= 3;
  sum_rows(row(a, a_stride, 0), row(b, b_stride, 0), m[0], width);
  sum_rows(row(a, a_stride, 1), row(b, b_stride, 1), m[1], width);
  int block_row = 0;
  int block_row_end = math::cell_begin(1, height, field.blocks_y);
  for (int y = 1; y < height - 1; ++y) {
    const uint8_t* next_a = row(a, a_stride, y + 1);
    const uint8_t* next_b = row(b, b_stride, y + 1);
    int16_t* smooth = smooth_row(band_rows);
    int16_t* diff = diff_row(band_rows);
    table.sobel_row(next_a, next_b, m[0], m[1], m[2], smooth, diff, width);
    const uint8_t* ra = row(a, a_stride, y);
    const uint8_t* rb = row(b, b_stride, y);
    band_a[band_rows] = ra;
    band_b[band_rows] = rb;
    ++band_rows;
    math::MotionSums* block_sums = row_sums.data();
    if (groups) {  // the middle groups run when the block row is complete (below)
      motion_row_scalar(smooth, diff, ra, rb, 1, 8, block_sums[0]);
      motion_row_scalar(smooth, diff, ra, rb, width - 8, width - 1, block_sums[field.blocks_x - 1]);
    } else {
      for (int x = 1; x < width - 1;) {  // one run of columns a block at a time
        const int bx = column_block[x];
        const int end = std::min(width - 1, math::cell_begin(bx + 1, width, field.blocks_x));
        motion_row_scalar(smooth, diff, ra, rb, x, end, block_sums[bx]);
        x = end;
      }
    }
    if (y + 1 == block_row_end || y + 1 == height - 1) {  // the block row is complete
      if (groups)
        table.motion_groups(smooth_row(0), diff_row(0), width, band_a, band_b, band_rows, 8,
                            field.blocks_x - 2, block_sums + 1);
      math::BlockMotionSums* out =
          field.blocks.data() + static_cast<ptrdiff_t>(block_row) * field.blocks_x;
      for (int bx = 0; bx < field.blocks_x; ++bx) {
        out[bx] = math::block_sums_of(block_sums[bx]);
        math::add_motion_sums(field.total, block_sums[bx]);
        block_sums[bx] = {};
      }
      band_rows = 0;
      ++block_row;
      block_row_end = math::cell_begin(block_row + 1, height, field.blocks_y);
    }
    std::swap(m[0], m[1]);  // rows move up: y -> y-1, y+1 -> y
    std::swap(m[1], m[2]);
  }
}

math::MotionSums motion_sums_8bit(const uint8_t* a, int a_stride, const uint8_t* b, int b_stride,
                                  int width, int height) {
  MotionField field;
  motion_field_8bit(a, a_stride, b, b_stride, width, height, field);
  return field.total;
}

namespace {

// Interior samples of each block column (or row): the sums cover 1 <= x < W-1 (1 <= y < H-1).
const std::vector<int>& interior_extents(int extent, int n, std::vector<int>& out) {
  out.resize(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    const int lo = std::max(1, math::cell_begin(i, extent, n));
    const int hi = std::min(extent - 1, math::cell_begin(i + 1, extent, n));
    out[static_cast<size_t>(i)] = std::max(0, hi - lo);
  }
  return out;
}

}  // namespace

double local_motion(const MotionField& field, int width, int height, double min_rms) {
  const int bx_n = field.blocks_x, by_n = field.blocks_y;
  if (bx_n <= 0 || by_n <= 0 || width < 3 || height < 3) return 0;
  // Reused from call to call (a stream's true duplicates come every other frame or so).
  thread_local std::vector<int> columns, rows;
  thread_local std::vector<double> loudness, sorted;
  interior_extents(width, bx_n, columns);
  interior_extents(height, by_n, rows);
  // Windows of 2x2 blocks (one block where the frame has a single block on an axis), sliding
  // by one block: 16x16 samples a step of 8, so any change of up to 8 samples across lies
  // whole inside some window.
  const int span_x = std::min(2, bx_n), span_y = std::min(2, by_n);
  const int windows_x = bx_n - span_x + 1, windows_y = by_n - span_y + 1;
  const auto block = [&](int bx, int by) -> const math::BlockMotionSums& {
    return field.blocks[static_cast<size_t>(by) * bx_n + bx];
  };
  // Loudness: the window's sum of (b - a)^2 per block of it, the mean square one block would
  // have if all the window's change were in it (a small mover, wherever the grid cuts it).
  // Window sums from sums of horizontal block pairs; window areas are products (separable).
  thread_local std::vector<int64_t> pairs;  // two rows of horizontal pair sums of dd
  pairs.assign(static_cast<size_t>(windows_x) * 2, 0);
  const auto pair_row = [&](int by, int64_t* out) {
    const math::BlockMotionSums* r = &field.blocks[static_cast<size_t>(by) * bx_n];
    for (int wx = 0; wx < windows_x; ++wx)
      out[wx] = span_x == 2 ? int64_t{r[wx].dd} + r[wx + 1].dd : int64_t{r[wx].dd};
  };
  loudness.resize(static_cast<size_t>(windows_x) * windows_y);
  int64_t* upper = pairs.data();
  int64_t* lower = pairs.data() + windows_x;
  pair_row(0, upper);
  const double blocks_per_window = span_x * span_y;
  for (int wy = 0; wy < windows_y; ++wy) {
    if (span_y == 2) pair_row(wy + 1, lower);
    const int64_t rows_area = span_y == 2 ? rows[wy] + rows[wy + 1] : rows[wy];
    double* out = &loudness[static_cast<size_t>(wy) * windows_x];
    for (int wx = 0; wx < windows_x; ++wx) {
      const int64_t dd = span_y == 2 ? upper[wx] + lower[wx] : upper[wx];
      const int64_t area = (span_x == 2 ? columns[wx] + columns[wx + 1] : columns[wx]) * rows_area;
      out[wx] =
          area > 0 ? static_cast<double>(dd) * blocks_per_window / static_cast<double>(area) : 0;
    }
    std::swap(upper, lower);
  }
  // The pair's noise: the median window's, so a few moving things do not raise it; a keyframe
  // re-coding the whole picture does.
  sorted = loudness;
  auto middle = sorted.begin() + static_cast<ptrdiff_t>(sorted.size() / 2);
  std::nth_element(sorted.begin(), middle, sorted.end());
  const double floor_square = std::max(min_rms * min_rms, kLocalNoiseFactor * *middle);
  double largest = 0;
  for (int wy = 0; wy < windows_y; ++wy)
    for (int wx = 0; wx < windows_x; ++wx) {
      if (!(loudness[static_cast<size_t>(wy) * windows_x + wx] > floor_square)) continue;
      int64_t window_dd = 0;
      for (int j = 0; j < span_y; ++j)
        for (int i = 0; i < span_x; ++i) window_dd += block(wx + i, wy + j).dd;
      // The fit over the window's blocks that hold the change (at least 1/8 of its energy):
      // a still texture in the others only dilutes the displacement of a small mover.
      math::MotionSums sums;
      for (int j = 0; j < span_y; ++j)
        for (int i = 0; i < span_x; ++i) {
          const math::BlockMotionSums& b = block(wx + i, wy + j);
          if (8 * int64_t{b.dd} >= window_dd) math::add_motion_sums(sums, b);
        }
      // Energy of (b - a) a translation of the window explains, against the gradient energy
      // of the samples that changed (the still texture between them would dilute it): about
      // the displacement in pixels (gx, gy are 16x the average picture's gradient).
      if (sums.gxx + sums.gyy <= 0 || sums.gmm <= 0) continue;
      const double explained = math::motion_fit(sums).explained * static_cast<double>(sums.dd);
      largest = std::max(largest, std::sqrt(256.0 * explained / static_cast<double>(sums.gmm)));
    }
  return largest;
}

double change_length(const MotionField& field, int width, int height, double min_rms) {
  const int bx_n = field.blocks_x, by_n = field.blocks_y;
  if (bx_n <= 0 || by_n <= 0 || width < 3 || height < 3) return 0;
  thread_local std::vector<int> columns, rows, stack;
  thread_local std::vector<double> energy;  // per sample, per block
  thread_local std::vector<uint8_t> state;  // 0: quiet, 1: changed, 2: changed and counted
  interior_extents(width, bx_n, columns);
  interior_extents(height, by_n, rows);
  const size_t count = static_cast<size_t>(bx_n) * by_n;
  energy.resize(count);
  for (int by = 0; by < by_n; ++by)
    for (int bx = 0; bx < bx_n; ++bx) {
      const int64_t area = static_cast<int64_t>(columns[bx]) * rows[by];
      const size_t at = static_cast<size_t>(by) * bx_n + bx;
      energy[at] =
          area > 0 ? static_cast<double>(field.blocks[at].dd) / static_cast<double>(area) : 0;
    }
  // Changed blocks above min_rms first: most duplicates have none, and skip the median.
  state.assign(count, 0);
  const double min_square = min_rms * min_rms;
  bool any = false;
  for (size_t at = 0; at < count; ++at) {
    const math::BlockMotionSums& b = field.blocks[at];
    if (energy[at] > min_square &&
        256 * int64_t{b.dd} >= kUnmaskedChangeRatio * (int64_t{b.gxx} + b.gyy)) {
      state[at] = 1;
      any = true;
    }
  }
  if (!any) return 0;
  // The pair's noise: the median block's energy (a keyframe re-coding the picture raises it).
  thread_local std::vector<double> sorted;
  sorted = energy;
  auto middle = sorted.begin() + static_cast<ptrdiff_t>(sorted.size() / 2);
  std::nth_element(sorted.begin(), middle, sorted.end());
  const double floor_square = kLocalNoiseFactor * *middle;
  if (floor_square > min_square)
    for (size_t at = 0; at < count; ++at)
      if (state[at] == 1 && !(energy[at] > floor_square)) state[at] = 0;
  // Block bounds in pixels, for the groups' extents.
  const auto x_begin = [&](int bx) { return math::cell_begin(bx, width, bx_n); };
  const auto y_begin = [&](int by) { return math::cell_begin(by, height, by_n); };
  int longest = 0;
  for (size_t seed = 0; seed < count; ++seed) {
    if (state[seed] != 1) continue;
    int x0 = bx_n, x1 = -1, y0 = by_n, y1 = -1;
    stack.assign(1, static_cast<int>(seed));
    state[seed] = 2;
    while (!stack.empty()) {
      const int at = stack.back();
      stack.pop_back();
      const int bx = at % bx_n, by = at / bx_n;
      x0 = std::min(x0, bx), x1 = std::max(x1, bx), y0 = std::min(y0, by), y1 = std::max(y1, by);
      for (int ny = std::max(0, by - 1); ny <= std::min(by_n - 1, by + 1); ++ny)
        for (int nx = std::max(0, bx - 1); nx <= std::min(bx_n - 1, bx + 1); ++nx) {
          const size_t next = static_cast<size_t>(ny) * bx_n + nx;
          if (state[next] == 1) {
            state[next] = 2;
            stack.push_back(static_cast<int>(next));
          }
        }
    }
    longest = std::max({longest, x_begin(x1 + 1) - x_begin(x0), y_begin(y1 + 1) - y_begin(y0)});
  }
  return longest;
}

bool signed_mean_within(uint64_t sum_a, uint64_t sum_b, int64_t pixel_count,
                        const Thresholds& thresholds) {
  const double signed_mean =
      static_cast<double>(static_cast<int64_t>(sum_a) - static_cast<int64_t>(sum_b)) /
      static_cast<double>(pixel_count);
  return !(std::fabs(signed_mean) > thresholds.max_abs_signed_mean_diff);
}

bool differences_within(const DifferenceSums& sums, const Thresholds& thresholds) {
  const StopLimits limits = stop_limits(thresholds);
  return !over_limits(sums, &limits);
}

double zoom_motion(const MotionField& field, int width, int height) {
  const math::MotionSums& t = field.total;
  if (t.dd <= 0 || field.blocks.empty()) return 0;
  // Normal equations of d ~ p gx + q gy + z (X gx + Y gy), X, Y from the frame's centre, with
  // each block's samples at the block's centre (the block sums are all there is).
  thread_local std::vector<double> centre_x, centre_y;
  thread_local std::vector<int> size_x, size_y;
  const auto centres = [](int extent, int n, std::vector<double>& centre, std::vector<int>& size) {
    centre.resize(static_cast<size_t>(n));
    size.resize(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      const int lo = math::cell_begin(i, extent, n), hi = math::cell_begin(i + 1, extent, n);
      centre[static_cast<size_t>(i)] = 0.5 * (lo + hi - 1) - 0.5 * (extent - 1);
      size[static_cast<size_t>(i)] = hi - lo;
    }
  };
  centres(width, field.blocks_x, centre_x, size_x);
  centres(height, field.blocks_y, centre_y, size_y);
  double m02 = 0, m12 = 0, m22 = 0, v2 = 0, radius_square = 0;
  int64_t samples = 0;
  for (int by = 0; by < field.blocks_y; ++by) {
    const double y = centre_y[static_cast<size_t>(by)];
    for (int bx = 0; bx < field.blocks_x; ++bx) {
      const double x = centre_x[static_cast<size_t>(bx)];
      const math::BlockMotionSums& s = field.blocks[static_cast<size_t>(by) * field.blocks_x + bx];
      const double xx = static_cast<double>(s.gxx), xy = static_cast<double>(s.gxy),
                   yy = static_cast<double>(s.gyy);
      m02 += x * xx + y * xy;
      m12 += x * xy + y * yy;
      m22 += x * x * xx + 2 * x * y * xy + y * y * yy;
      v2 += x * static_cast<double>(s.gxd) + y * static_cast<double>(s.gyd);
      const int64_t area =
          static_cast<int64_t>(size_x[static_cast<size_t>(bx)]) * size_y[static_cast<size_t>(by)];
      radius_square += (x * x + y * y) * static_cast<double>(area);
      samples += area;
    }
  }
  const double m00 = static_cast<double>(t.gxx), m01 = static_cast<double>(t.gxy),
               m11 = static_cast<double>(t.gyy), v0 = static_cast<double>(t.gxd),
               v1 = static_cast<double>(t.gyd);
  // 3x3 solve by Cramer's rule (symmetric matrix).
  const double det =
      m00 * (m11 * m22 - m12 * m12) - m01 * (m01 * m22 - m12 * m02) + m02 * (m01 * m12 - m11 * m02);
  if (!(std::fabs(det) > 1e-12 * m00 * m11 * m22)) return 0;
  const double p =
      (v0 * (m11 * m22 - m12 * m12) - m01 * (v1 * m22 - m12 * v2) + m02 * (v1 * m12 - m11 * v2)) /
      det;
  const double q =
      (m00 * (v1 * m22 - m12 * v2) - v0 * (m01 * m22 - m12 * m02) + m02 * (m01 * v2 - v1 * m02)) /
      det;
  const double z =
      (m00 * (m11 * v2 - v1 * m12) - m01 * (m01 * v2 - v1 * m02) + v0 * (m01 * m12 - m11 * m02)) /
      det;
  // The energy the zoom explains beyond the best translation alone.
  const math::MotionFit translation = math::motion_fit(t);
  const double dd = static_cast<double>(t.dd);
  const double gained = (p * v0 + q * v1 + z * v2) / dd - translation.explained;
  if (!(gained > 0)) return 0;
  // As for the translation: gx = 16 x the picture's gradient, so z * 16 is the zoom's
  // displacement per pixel from the centre; taken at the RMS radius of the frame.
  const double rms_radius = std::sqrt(radius_square / static_cast<double>(samples));
  return 16.0 * std::fabs(z) * rms_radius * std::sqrt(std::min(1.0, gained));
}

bool motion_within(const MotionField& field, int width, int height, const Thresholds& thresholds) {
  return math::motion_fit(field.total).score <= thresholds.max_motion &&
         zoom_motion(field, width, height) <= thresholds.max_zoom_motion &&
         local_motion(field, width, height, thresholds.local_motion_min_rms) <=
             thresholds.max_local_motion &&
         change_length(field, width, height, thresholds.change_min_rms) <=
             thresholds.max_change_length;
}

DifferenceMeasures measures_from_sums(const DifferenceSums& difference, const MotionField& motion,
                                      int width, int height, const Thresholds& thresholds) {
  DifferenceMeasures m = difference.measures();
  const math::MotionFit fit = math::motion_fit(motion.total);
  m.motion_shift_x = fit.shift_x;
  m.motion_shift_y = fit.shift_y;
  m.motion_explained = fit.explained;
  m.motion = fit.score;
  m.local_motion = local_motion(motion, width, height, thresholds.local_motion_min_rms);
  m.zoom_motion = zoom_motion(motion, width, height);
  m.change_length = change_length(motion, width, height, thresholds.change_min_rms);
  return m;
}

bool confirm_duplicate_8bit(const uint8_t* a, int a_stride, const uint8_t* b, int b_stride,
                            int width, int height, uint64_t sum_a, uint64_t sum_b,
                            const Thresholds& thresholds) {
  const StopLimits limits = stop_limits(thresholds);
  return confirm_duplicate(
      sum_a, sum_b, width, height, thresholds,
      [&] {
        bool stopped = false;  // a stopped pass's partial sums are already over a limit
        return difference_8bit_impl(a, a_stride, b, b_stride, width, height, &sum_a, &sum_b,
                                    &limits, &stopped);
      },
      [&]() -> const MotionField& {
        thread_local MotionField field;  // reused: its blocks keep their capacity
        motion_field_8bit(a, a_stride, b, b_stride, width, height, field);
        return field;
      });
}

}  // namespace upframe::dedup::detail
