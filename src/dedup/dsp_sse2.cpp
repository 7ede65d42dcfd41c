// SSE2 overrides of the DSP table (dsp.hpp); SSE2 is x86-64's baseline. psadbw sums 8 samples
// at once (the hash and the block measure need no per-column arrays); pmaddwd gives the motion
// sums. Each computes exactly the integers of the C reference in dsp.cpp.
#include "dedup/dsp.hpp"

#if defined(__x86_64__) && defined(__SSE2__)
#include <emmintrin.h>

#include <algorithm>

namespace upframe::dedup::detail {

namespace {

// Rows are read in order (memory streams at full speed); the group sums (width / 8 words)
// stay in L1.
void group_sums_sse2(const uint8_t* data, ptrdiff_t stride, int width, int y0, int y1,
                     uint8_t* copy, uint64_t* group_sums) {
  const __m128i zero = _mm_setzero_si128();
  std::fill(group_sums, group_sums + width / 8, uint64_t{0});
  auto* sums = reinterpret_cast<__m128i*>(group_sums);  // two groups per register
  const int wide = width & ~31;
  for (int y = y0; y < y1; ++y) {
    const uint8_t* row = data + y * stride;
    uint8_t* out = copy ? copy + static_cast<ptrdiff_t>(y) * width : nullptr;
    for (int x = 0; x < wide; x += 32) {
      const __m128i v0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + x));
      const __m128i v1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + x + 16));
      if (out) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + x), v0);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + x + 16), v1);
      }
      _mm_storeu_si128(sums + x / 16,
                       _mm_add_epi64(_mm_loadu_si128(sums + x / 16), _mm_sad_epu8(v0, zero)));
      _mm_storeu_si128(sums + x / 16 + 1,
                       _mm_add_epi64(_mm_loadu_si128(sums + x / 16 + 1), _mm_sad_epu8(v1, zero)));
    }
    for (int x = wide; x < width; x += 8) {
      const __m128i v = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + x));
      if (out) _mm_storel_epi64(reinterpret_cast<__m128i*>(out + x), v);
      group_sums[x / 8] += static_cast<uint64_t>(_mm_cvtsi128_si64(_mm_sad_epu8(v, zero)));
    }
  }
}

void group_abs_diff_sse2(const uint8_t* a, ptrdiff_t a_stride, const uint8_t* b, ptrdiff_t b_stride,
                         int width, int y0, int y1, uint64_t* group_abs, uint64_t* sum_a,
                         uint64_t* sum_b) {
  const __m128i zero = _mm_setzero_si128();
  std::fill(group_abs, group_abs + width / 8, uint64_t{0});
  auto* sums = reinterpret_cast<__m128i*>(group_abs);
  __m128i total_a = zero, total_b = zero;
  const int wide = width & ~15;
  for (int y = y0; y < y1; ++y) {
    const uint8_t* ra = a + y * a_stride;
    const uint8_t* rb = b + y * b_stride;
    for (int x = 0; x < wide; x += 16) {
      const __m128i va = _mm_loadu_si128(reinterpret_cast<const __m128i*>(ra + x));
      const __m128i vb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rb + x));
      // psadbw of a against b: the sum of |a - b| of each 8 bytes.
      _mm_storeu_si128(sums + x / 16,
                       _mm_add_epi64(_mm_loadu_si128(sums + x / 16), _mm_sad_epu8(va, vb)));
      if (sum_a) {
        total_a = _mm_add_epi64(total_a, _mm_sad_epu8(va, zero));
        total_b = _mm_add_epi64(total_b, _mm_sad_epu8(vb, zero));
      }
    }
    for (int x = wide; x < width; x += 8) {
      const __m128i va = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(ra + x));
      const __m128i vb = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(rb + x));
      group_abs[x / 8] += static_cast<uint64_t>(_mm_cvtsi128_si64(_mm_sad_epu8(va, vb)));
      if (sum_a) {
        total_a = _mm_add_epi64(total_a, _mm_sad_epu8(va, zero));
        total_b = _mm_add_epi64(total_b, _mm_sad_epu8(vb, zero));
      }
    }
  }
  if (sum_a) {
    uint64_t lanes[2];
    _mm_storeu_si128(reinterpret_cast<__m128i*>(lanes), total_a);
    *sum_a += lanes[0] + lanes[1];
    _mm_storeu_si128(reinterpret_cast<__m128i*>(lanes), total_b);
    *sum_b += lanes[0] + lanes[1];
  }
}

void sobel_row_sse2(const uint8_t* a, const uint8_t* b, const int16_t* m0, const int16_t* m1,
                    int16_t* m2, int16_t* smooth, int16_t* diff, int width) {
  const __m128i zero = _mm_setzero_si128();
  int x = 0;
  for (; x + 16 <= width; x += 16) {
    const __m128i va = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a + x));
    const __m128i vb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + x));
    const __m128i sums[2] = {
        _mm_add_epi16(_mm_unpacklo_epi8(va, zero), _mm_unpacklo_epi8(vb, zero)),
        _mm_add_epi16(_mm_unpackhi_epi8(va, zero), _mm_unpackhi_epi8(vb, zero))};
    for (int half = 0; half < 2; ++half) {
      const int at = x + 8 * half;
      const __m128i low = _mm_loadu_si128(reinterpret_cast<const __m128i*>(m0 + at));
      const __m128i mid = _mm_loadu_si128(reinterpret_cast<const __m128i*>(m1 + at));
      const __m128i high = sums[half];
      _mm_storeu_si128(reinterpret_cast<__m128i*>(m2 + at), high);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(smooth + at),
                       _mm_add_epi16(_mm_add_epi16(low, high), _mm_add_epi16(mid, mid)));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(diff + at), _mm_sub_epi16(high, low));
    }
  }
  sobel_row_c(a + x, b + x, m0 + x, m1 + x, m2 + x, smooth + x, diff + x, width - x);
}

// The seven pmaddwd lanes (gxx, gxy, gyy, gxd, gyd, dd, gmm) run down the group's rows in
// registers.
// Each lane gains at most 2 * 2040^2 per row: 15 rows stay below 2^27, so four lanes add up in
// 32 bits when they are flushed.
inline void motion_group_sse2(const int16_t* smooth, const int16_t* diff, ptrdiff_t pitch,
                              const uint8_t* const* rows_a, const uint8_t* const* rows_b, int rows,
                              int x, math::MotionSums& into) {
  const __m128i zero = _mm_setzero_si128();
  const auto load = [](const int16_t* p) {
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  };
  const __m128i below_changed = _mm_set1_epi16(static_cast<int16_t>(math::kChangedSampleLevel - 1));
  __m128i lanes[7];
  for (__m128i& v : lanes) v = zero;
  for (int k = 0; k < rows; ++k) {
    const int16_t* s = smooth + k * pitch;
    const int16_t* dr = diff + k * pitch;
    const __m128i gx = _mm_sub_epi16(load(s + x + 1), load(s + x - 1));
    const __m128i gy = _mm_add_epi16(_mm_add_epi16(load(dr + x - 1), load(dr + x + 1)),
                                     _mm_add_epi16(load(dr + x), load(dr + x)));
    const __m128i va =
        _mm_unpacklo_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(rows_a[k] + x)), zero);
    const __m128i vb =
        _mm_unpacklo_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(rows_b[k] + x)), zero);
    const __m128i d = _mm_sub_epi16(vb, va);
    lanes[0] = _mm_add_epi32(lanes[0], _mm_madd_epi16(gx, gx));
    lanes[1] = _mm_add_epi32(lanes[1], _mm_madd_epi16(gx, gy));
    lanes[2] = _mm_add_epi32(lanes[2], _mm_madd_epi16(gy, gy));
    lanes[3] = _mm_add_epi32(lanes[3], _mm_madd_epi16(gx, d));
    lanes[4] = _mm_add_epi32(lanes[4], _mm_madd_epi16(gy, d));
    lanes[5] = _mm_add_epi32(lanes[5], _mm_madd_epi16(d, d));
    // math::changed_sample: |d| >= the level; the gradient energy of those samples.
    const __m128i changed =
        _mm_cmpgt_epi16(_mm_max_epi16(d, _mm_sub_epi16(zero, d)), below_changed);
    const __m128i cgx = _mm_and_si128(gx, changed), cgy = _mm_and_si128(gy, changed);
    lanes[6] =
        _mm_add_epi32(lanes[6], _mm_add_epi32(_mm_madd_epi16(cgx, cgx), _mm_madd_epi16(cgy, cgy)));
  }
  // Two transposing adds give all six totals.
  const auto pair_sums = [](__m128i p, __m128i q) {  // p0+p2, q0+q2, p1+p3, q1+q3
    return _mm_add_epi32(_mm_unpacklo_epi32(p, q), _mm_unpackhi_epi32(p, q));
  };
  const __m128i ab = pair_sums(lanes[0], lanes[1]);
  const __m128i cd = pair_sums(lanes[2], lanes[3]);
  const __m128i ef = pair_sums(lanes[4], lanes[5]);
  int32_t totals[8];
  _mm_storeu_si128(reinterpret_cast<__m128i*>(totals),
                   _mm_add_epi32(_mm_unpacklo_epi64(ab, cd), _mm_unpackhi_epi64(ab, cd)));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(totals + 4),
                   _mm_add_epi32(ef, _mm_srli_si128(ef, 8)));
  into.gxx += totals[0];
  into.gxy += totals[1];
  into.gyy += totals[2];
  into.gxd += totals[3];
  into.gyd += totals[4];
  into.dd += totals[5];
  // gmm's lane gains at most 4 * 2040^2 per row (< 2^25): four lanes of 15 rows fit 32 bits.
  const __m128i g2 = _mm_add_epi32(lanes[6], _mm_srli_si128(lanes[6], 8));
  into.gmm += _mm_cvtsi128_si32(_mm_add_epi32(g2, _mm_srli_si128(g2, 4)));
}

void motion_groups_sse2(const int16_t* smooth, const int16_t* diff, ptrdiff_t pitch,
                        const uint8_t* const* rows_a, const uint8_t* const* rows_b, int rows, int x,
                        int groups, math::MotionSums* into) {
  for (int g = 0; g < groups; ++g)
    motion_group_sse2(smooth, diff, pitch, rows_a, rows_b, rows, x + 8 * g, into[g]);
}

}  // namespace

void init_dsp_sse2(Dsp& dsp) {
  dsp.group_sums = group_sums_sse2;
  dsp.group_abs_diff = group_abs_diff_sse2;
  dsp.sobel_row = sobel_row_sse2;
  dsp.motion_groups = motion_groups_sse2;
}

}  // namespace upframe::dedup::detail
#endif  // __x86_64__ && __SSE2__
