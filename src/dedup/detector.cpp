#include "upframe/dedup/detector.hpp"

#include <cmath>
#include <string>
#include <utility>

#include "dedup/kernels.hpp"
#include "upframe/error.hpp"

namespace upframe::dedup {

Thresholds default_thresholds() {
  // Chosen on the clips tests/dedup generates; the measured margins are in docs/DEDUP.md.
  Thresholds t;
  t.max_mean_abs_diff = 2.5;
  t.max_abs_signed_mean_diff = 0.6;
  t.max_block_mean_abs_diff = 11.0;
  return t;
}

DifferenceMeasures measure_difference(const LumaView& a, const LumaView& b) {
  detail::validate(a);
  detail::validate(b);
  if (a.width != b.width || a.height != b.height)
    throw Error({},
                "cannot compare a " + std::to_string(a.width) + "x" + std::to_string(a.height) +
                    " luma plane with a " + std::to_string(b.width) + "x" +
                    std::to_string(b.height) + " one",
                ExitCode::kProcessingFailed, "detect");
  // 8-bit copies only where a plane has more bits; 8-bit planes are read in place.
  std::vector<uint8_t> a8, b8;
  auto as_8bit = [](const LumaView& v,
                    std::vector<uint8_t>& storage) -> std::pair<const uint8_t*, int> {
    if (v.bit_depth == 8) return {v.data, v.linesize};
    storage.resize(static_cast<size_t>(v.width) * v.height);
    detail::copy_to_8bit(v, storage.data());
    return {storage.data(), v.width};
  };
  const auto [pa, sa] = as_8bit(a, a8);
  const auto [pb, sb] = as_8bit(b, b8);
  return detail::difference_8bit(pa, sa, pb, sb, a.width, a.height).measures();
}

namespace {

bool within(const DifferenceMeasures& m, const Thresholds& t) {
  return m.mean_abs_diff <= t.max_mean_abs_diff &&
         std::fabs(m.signed_mean_diff) <= t.max_abs_signed_mean_diff &&
         m.max_block_mean_abs_diff <= t.max_block_mean_abs_diff;
}

}  // namespace

struct DuplicateDetector::Impl {
  struct UniqueFrame {
    int64_t index = -1;
    AverageHash hash;
    int width = 0, height = 0;
    uint64_t luma_sum = 0;      // sum of the 8-bit samples: the signed difference needs it
    std::vector<uint8_t> luma;  // 8-bit, rows packed
  };

  DetectorOptions options;
  size_t window = 1;
  std::deque<UniqueFrame> uniques;  // most recent first, at most `window`
  std::vector<uint8_t> pending;     // 8-bit copy of the frame being classified
  int64_t last_index = -1;
  bool any_frame = false;
  int64_t hash_candidates = 0;
  int64_t rejected_by_confirmation = 0;
};

DuplicateDetector::DuplicateDetector(DetectorOptions options) : impl_(std::make_unique<Impl>()) {
  if (options.hash_size != 8 && options.hash_size != 16 && options.hash_size != 32)
    throw UsageError({}, "hash size must be 8, 16 or 32, got " + std::to_string(options.hash_size));
  if (options.hash_threshold < 0 || options.hash_threshold > options.hash_size * options.hash_size)
    throw UsageError({}, "hash threshold must be between 0 and " +
                             std::to_string(options.hash_size * options.hash_size) + ", got " +
                             std::to_string(options.hash_threshold));
  if (options.window < 1)
    throw UsageError({}, "dedup window must be at least 1, got " + std::to_string(options.window));
  const Thresholds& t = options.thresholds;
  if (!(t.max_mean_abs_diff >= 0) || !(t.max_abs_signed_mean_diff >= 0) ||
      !(t.max_block_mean_abs_diff >= 0))
    throw UsageError({}, "duplicate confirmation thresholds must be non-negative numbers");
  impl_->window = options.scope == Scope::kGlobal ? static_cast<size_t>(options.window) : 1;
  impl_->options = std::move(options);
}

DuplicateDetector::~DuplicateDetector() = default;

Decision DuplicateDetector::classify(int64_t index, const LumaView& luma) {
  Impl& s = *impl_;
  if (s.any_frame && index <= s.last_index)
    throw Error({},
                "frames must be classified in increasing order: " + std::to_string(index) +
                    " after " + std::to_string(s.last_index),
                ExitCode::kProcessingFailed, "detect", index);
  detail::validate(luma);
  s.any_frame = true;
  s.last_index = index;

  // One pass: hash and the 8-bit copy a unique frame keeps.
  s.pending.resize(static_cast<size_t>(luma.width) * luma.height);
  uint64_t luma_sum = 0;
  const AverageHash hash =
      detail::hash_and_copy(luma, s.options.hash_size, s.pending.data(), &luma_sum);

  bool candidate = false;
  for (const Impl::UniqueFrame& unique : s.uniques) {  // most recent first
    if (unique.width != luma.width || unique.height != luma.height) continue;
    if (hamming_distance(hash, unique.hash) > s.options.hash_threshold) continue;
    candidate = true;
    const DifferenceMeasures m =
        detail::difference_8bit(s.pending.data(), luma.width, unique.luma.data(), luma.width,
                                luma.width, luma.height, &luma_sum, &unique.luma_sum)
            .measures();
    if (within(m, s.options.thresholds)) {
      ++s.hash_candidates;
      return Decision{true, unique.index};
    }
  }
  if (candidate) {
    ++s.hash_candidates;
    ++s.rejected_by_confirmation;
  }

  // A unique frame: keep its copy; the oldest beyond the window gives its buffer back.
  Impl::UniqueFrame unique;
  if (s.uniques.size() >= s.window) {
    unique.luma = std::move(s.uniques.back().luma);
    s.uniques.pop_back();
  }
  unique.index = index;
  unique.hash = hash;
  unique.luma_sum = luma_sum;
  unique.width = luma.width;
  unique.height = luma.height;
  std::swap(unique.luma, s.pending);
  s.uniques.push_front(std::move(unique));
  return Decision{false, -1};
}

void DuplicateDetector::reset() {
  Impl& s = *impl_;
  if (!s.uniques.empty()) s.pending = std::move(s.uniques.back().luma);  // keep one buffer
  s.uniques.clear();
  s.any_frame = false;
}

int64_t DuplicateDetector::hash_candidates() const { return impl_->hash_candidates; }
int64_t DuplicateDetector::rejected_by_confirmation() const {
  return impl_->rejected_by_confirmation;
}

}  // namespace upframe::dedup
