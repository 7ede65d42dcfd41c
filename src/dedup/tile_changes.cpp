#include "upframe/dedup/tile_changes.hpp"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "dedup/kernels.hpp"
#include "upframe/error.hpp"

namespace upframe::dedup {

struct TileChangeTracker::Impl {
  // A tile's reference: its window of the frame its held upscaled pixels were computed from.
  struct Reference {
    std::vector<uint8_t> window;  // 8-bit, rows packed
    uint64_t sum = 0;
  };

  PixelRect window_of(const TileMask& mask, int column, int row) const {
    const PixelRect t = tile_rect(mask, column, row);
    const int x0 = std::max(0, t.x - options.halo), y0 = std::max(0, t.y - options.halo);
    const int x1 = std::min(mask.width, t.x + t.w + options.halo);
    const int y1 = std::min(mask.height, t.y + t.h + options.halo);
    return {x0, y0, x1 - x0, y1 - y0};
  }

  TileReuseOptions options;
  int width = 0, height = 0;
  std::vector<Reference> references;  // one per tile; empty: none held
  std::vector<uint8_t> plane8;        // the frame at 8 bits, when it has more
  std::vector<uint8_t> scratch;       // the new window, rows packed
};

TileChangeTracker::TileChangeTracker(TileReuseOptions options) : impl_(std::make_unique<Impl>()) {
  if (options.tile < 16 || options.tile % 2 != 0)
    throw UsageError({}, "the tile reuse tile side must be even and at least 16, got " +
                             std::to_string(options.tile));
  if (options.halo < 0)
    throw UsageError(
        {}, "the tile reuse halo must not be negative, got " + std::to_string(options.halo));
  impl_->options = options;
}

TileChangeTracker::~TileChangeTracker() = default;

const TileReuseOptions& TileChangeTracker::options() const { return impl_->options; }

void TileChangeTracker::reset() { impl_->references.clear(); }

TileMask TileChangeTracker::next(const LumaView& luma) {
  Impl& s = *impl_;
  detail::validate(luma);
  TileMask mask(luma.width, luma.height, s.options.tile);
  const uint8_t* data = luma.data;
  int stride = luma.linesize;
  if (luma.bit_depth > 8) {
    s.plane8.resize(static_cast<size_t>(luma.width) * luma.height);
    detail::copy_to_8bit(luma, s.plane8.data());
    data = s.plane8.data();
    stride = luma.width;
  }
  const bool have_references = luma.width == s.width && luma.height == s.height &&
                               s.references.size() == mask.changed.size();
  if (!have_references) {
    s.references.assign(mask.changed.size(), {});
    s.width = luma.width;
    s.height = luma.height;
  }
  const auto copy_window = [&](const PixelRect& w, std::vector<uint8_t>& out) {
    out.resize(static_cast<size_t>(w.w) * w.h);
    uint64_t sum = 0;
    for (int y = 0; y < w.h; ++y) {
      const uint8_t* src = data + static_cast<ptrdiff_t>(w.y + y) * stride + w.x;
      std::memcpy(out.data() + static_cast<size_t>(y) * w.w, src, w.w);
      for (int x = 0; x < w.w; ++x) sum += src[x];
    }
    return sum;
  };
  if (have_references) {
    // The frame detector's gate, with the mean |difference| capped for tiles (see the header).
    Thresholds tile_thresholds = s.options.thresholds;
    tile_thresholds.max_mean_abs_diff =
        std::min(tile_thresholds.max_mean_abs_diff, s.options.max_mean_abs_diff);
    for (int row = 0; row < mask.rows; ++row)
      for (int column = 0; column < mask.columns; ++column) {
        const size_t at = static_cast<size_t>(row) * mask.columns + column;
        const PixelRect w = s.window_of(mask, column, row);
        const Impl::Reference& ref = s.references[at];
        const uint64_t sum = copy_window(w, s.scratch);
        // a = the reference, b = now: the measures' orientation in the frame detector.
        const bool same = detail::confirm_duplicate_8bit(
            ref.window.data(), w.w, s.scratch.data(), w.w, w.w, w.h, ref.sum, sum, tile_thresholds);
        mask.changed[at] = same ? 0 : 1;
      }
    // Many changed tiles: one whole-frame run costs no more than their windows.
    const int64_t area = window_area(
        reuse_windows(mask, s.options.halo + kReuseExtraMargin, s.options.max_run_tiles));
    if (static_cast<double>(area) >
        s.options.whole_frame_share * static_cast<double>(luma.width) * luma.height)
      std::fill(mask.changed.begin(), mask.changed.end(), uint8_t{1});
  }
  for (int row = 0; row < mask.rows; ++row)
    for (int column = 0; column < mask.columns; ++column) {
      const size_t at = static_cast<size_t>(row) * mask.columns + column;
      if (!mask.changed[at]) continue;
      Impl::Reference& ref = s.references[at];
      ref.sum = copy_window(s.window_of(mask, column, row), ref.window);
    }
  return mask;
}

}  // namespace upframe::dedup
