#include "dedup/kernels.hpp"

#include <algorithm>
#include <cstring>
#include <string>

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

AverageHash hash_and_copy(const LumaView& luma, int hash_size, uint8_t* copy_8bit) {
  validate(luma);
  if (hash_size != 8 && hash_size != 16 && hash_size != 32)
    throw UsageError({}, "hash size must be 8, 16 or 32, got " + std::to_string(hash_size));
  const int width = luma.width, height = luma.height;
  if (width < hash_size || height < hash_size)
    throw Error({},
                "a " + std::to_string(width) + "x" + std::to_string(height) +
                    " frame is too small for a " + std::to_string(hash_size) + "x" +
                    std::to_string(hash_size) + " hash",
                ExitCode::kProcessingFailed, "detect");

  // Column sums over up to 256 rows fit 16 bits (256 * 255 < 65536); flushed into the cells
  // at the end of each cell row, or earlier for very tall cells.
  constexpr int kMaxRowsPerFlush = 256;
  std::vector<uint16_t> colsum(width, 0);
  std::vector<uint8_t> scratch(luma.bit_depth > 8 && !copy_8bit ? width : 0);
  uint64_t cell_sums[32 * 32] = {};

  for (int cy = 0; cy < hash_size; ++cy) {
    const int y0 = math::cell_begin(cy, height, hash_size);
    const int y1 = math::cell_begin(cy + 1, height, hash_size);
    int rows_in_columns = 0;
    for (int y = y0; y < y1; ++y) {
      const uint8_t* src = luma.data + static_cast<ptrdiff_t>(y) * luma.linesize;
      const uint8_t* row8;
      if (luma.bit_depth > 8) {
        uint8_t* out = copy_8bit ? copy_8bit + static_cast<ptrdiff_t>(y) * width : scratch.data();
        convert_row_to_8bit(src, out, width, luma.bit_depth);
        row8 = out;
      } else {
        if (copy_8bit) std::memcpy(copy_8bit + static_cast<ptrdiff_t>(y) * width, src, width);
        row8 = src;
      }
      accumulate_row(row8, colsum.data(), width);
      if (++rows_in_columns == kMaxRowsPerFlush) {
        flush_columns(colsum.data(), width, hash_size, cell_sums + cy * hash_size);
        rows_in_columns = 0;
      }
    }
    flush_columns(colsum.data(), width, hash_size, cell_sums + cy * hash_size);
  }

  const int cell_count = hash_size * hash_size;
  uint32_t averages[32 * 32];
  uint64_t sum_of_averages = 0;
  for (int cy = 0; cy < hash_size; ++cy) {
    const int64_t rows =
        math::cell_begin(cy + 1, height, hash_size) - math::cell_begin(cy, height, hash_size);
    for (int cx = 0; cx < hash_size; ++cx) {
      const int64_t cols =
          math::cell_begin(cx + 1, width, hash_size) - math::cell_begin(cx, width, hash_size);
      const int cell = cy * hash_size + cx;
      averages[cell] = math::cell_average(cell_sums[cell], rows * cols);
      sum_of_averages += averages[cell];
    }
  }
  AverageHash hash;
  hash.size = hash_size;
  for (int cell = 0; cell < cell_count; ++cell) {
    const uint64_t bit = uint64_t{1} << (cell % 64);
    if (math::hash_bit(averages[cell], sum_of_averages, cell_count)) hash.words[cell / 64] |= bit;
    if (math::hash_bit_unstable(averages[cell], sum_of_averages, cell_count, kUnstableMargin))
      hash.unstable[cell / 64] |= bit;
  }
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

DifferenceSums difference_8bit(const uint8_t* a, int a_stride, const uint8_t* b, int b_stride,
                               int width, int height) {
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
  }
  return sums;
}

}  // namespace upframe::dedup::detail
