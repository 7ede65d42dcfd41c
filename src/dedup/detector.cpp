#include "upframe/dedup/detector.hpp"

#include <cmath>
#include <string>
#include <utility>

#include "dedup/kernels.hpp"
#include "upframe/error.hpp"
#include "upframe/frame.hpp"

#ifdef UPFRAME_HAVE_CUDA
#include "dedup/cuda/device_dedup.hpp"
#endif

namespace upframe::dedup {

struct DuplicateDetector::Impl {
  struct UniqueFrame {
    int64_t index = -1;
    AverageHash hash;
    int width = 0, height = 0;
    uint64_t luma_sum = 0;  // sum of the 8-bit samples: the signed difference needs it
    // The 8-bit luma: the decoded frame itself (8-bit frames, kept by reference) or `copy`.
    Frame frame;
    std::vector<uint8_t> copy;  // rows packed
    const uint8_t* data = nullptr;
    int stride = 0;
    // A device frame (NVDEC): its luma plane in device memory, kept by reference in `frame`.
    bool on_device = false;
    LumaView device_luma;
  };

  void check_order(int64_t index);
  // The most recent kept unique frame of the same size and memory (host or device) whose hash
  // matches `hash` and that `confirm(unique)` accepts; -1 when none. Counts the candidates and
  // the rejections.
  template <typename Confirm>
  int64_t find_source(const AverageHash& hash, const LumaView& luma, bool on_device,
                      Confirm confirm);
  // A unique frame to keep, with what both kinds record.
  static UniqueFrame kept(int64_t index, const AverageHash& hash, uint64_t luma_sum,
                          const LumaView& luma);
  Decision classify(int64_t index, const LumaView& luma, const Frame* frame);
#ifdef UPFRAME_HAVE_CUDA
  // The same decision on the device (docs/INTERFACE.md: bit-identical to the CPU's). Compiled,
  // never run on a GPU (docs/GPU.md).
  Decision classify_device(int64_t index, const Frame& frame);
  std::unique_ptr<cuda::DeviceDedup> device;
#endif

  DetectorOptions options;
  size_t window = 1;
  std::deque<UniqueFrame> uniques;  // most recent first, at most `window`
  std::vector<uint8_t> pending;     // 8-bit copy of the frame being classified, when needed
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
      !(t.max_block_mean_abs_diff >= 0) || !(t.max_motion >= 0) || !(t.max_local_motion >= 0) ||
      !(t.local_motion_min_rms >= 0) || !(t.max_zoom_motion >= 0) || !(t.max_change_length >= 0) ||
      !(t.change_min_rms >= 0))
    throw UsageError({}, "duplicate confirmation thresholds must be non-negative numbers");
  impl_->window = options.scope == Scope::kGlobal ? static_cast<size_t>(options.window) : 1;
  impl_->options = options;
}

DuplicateDetector::~DuplicateDetector() = default;

Decision DuplicateDetector::classify(int64_t index, const Frame& frame) {
#ifdef UPFRAME_HAVE_CUDA
  if (frame.on_device()) return impl_->classify_device(index, frame);
#endif
  const LumaView luma = luma_of(frame);
  return impl_->classify(index, luma, &frame);
}

Decision DuplicateDetector::classify(int64_t index, const LumaView& luma) {
  return impl_->classify(index, luma, nullptr);
}

void DuplicateDetector::Impl::check_order(int64_t index) {
  if (any_frame && index <= last_index)
    throw Error({},
                "frames must be classified in increasing order: " + std::to_string(index) +
                    " after " + std::to_string(last_index),
                ExitCode::kProcessingFailed, "detect", index);
  any_frame = true;
  last_index = index;
}

template <typename Confirm>
int64_t DuplicateDetector::Impl::find_source(const AverageHash& hash, const LumaView& luma,
                                             bool on_device, Confirm confirm) {
  bool candidate = false;
  for (const UniqueFrame& unique : uniques) {  // most recent first
    if (unique.on_device != on_device || unique.width != luma.width || unique.height != luma.height)
      continue;
    if (hamming_distance(hash, unique.hash) > options.hash_threshold) continue;
    candidate = true;
    if (confirm(unique)) {
      ++hash_candidates;
      return unique.index;
    }
  }
  if (candidate) {
    ++hash_candidates;
    ++rejected_by_confirmation;
  }
  return -1;
}

DuplicateDetector::Impl::UniqueFrame DuplicateDetector::Impl::kept(int64_t index,
                                                                   const AverageHash& hash,
                                                                   uint64_t luma_sum,
                                                                   const LumaView& luma) {
  UniqueFrame unique;
  unique.index = index;
  unique.hash = hash;
  unique.luma_sum = luma_sum;
  unique.width = luma.width;
  unique.height = luma.height;
  return unique;
}

#ifdef UPFRAME_HAVE_CUDA
Decision DuplicateDetector::Impl::classify_device(int64_t index, const Frame& frame) {
  check_order(index);
  if (!device) device = std::make_unique<cuda::DeviceDedup>();
  const LumaView luma = cuda::device_luma_of(frame);
  const cuda::DeviceHash hashed = device->average_hash(luma, options.hash_size);
  const int64_t source = find_source(hashed.hash, luma, true, [&](const UniqueFrame& unique) {
    return device->confirm_duplicate(unique.device_luma, unique.luma_sum, luma, hashed.luma_sum,
                                     options.thresholds);
  });
  if (source >= 0) return Decision{true, source};
  if (uniques.size() >= window) uniques.pop_back();
  UniqueFrame unique = kept(index, hashed.hash, hashed.luma_sum, luma);
  unique.frame = frame.ref();  // keeps the NVDEC surface (the decoder adds surfaces for these)
  unique.on_device = true;
  unique.device_luma = luma;
  uniques.push_front(std::move(unique));
  return Decision{false, -1};
}
#endif

Decision DuplicateDetector::Impl::classify(int64_t index, const LumaView& luma,
                                           const Frame* frame) {
  check_order(index);
  detail::validate(luma);

  // One pass over the frame: the hash, the sample sum, and the 8-bit copy only where one is
  // needed (more than 8 bits, or a plane the caller owns).
  const bool keep_reference = frame && luma.bit_depth == 8;
  const uint8_t* data = luma.data;
  int stride = luma.linesize;
  if (!keep_reference) {
    pending.resize(static_cast<size_t>(luma.width) * luma.height);
    data = pending.data();
    stride = luma.width;
  }
  uint64_t luma_sum = 0;
  const AverageHash hash = detail::hash_and_copy(
      luma, options.hash_size, keep_reference ? nullptr : pending.data(), &luma_sum);

  const int64_t source = find_source(hash, luma, false, [&](const UniqueFrame& unique) {
    // a = the kept frame, b = the new one: the motion is measured from the past to now.
    return detail::confirm_duplicate_8bit(unique.data, unique.stride, data, stride, luma.width,
                                          luma.height, unique.luma_sum, luma_sum,
                                          options.thresholds);
  });
  if (source >= 0) return Decision{true, source};

  // A unique frame: keep it; the oldest beyond the window gives its copy buffer back.
  std::vector<uint8_t> freed;
  if (uniques.size() >= window) {
    freed = std::move(uniques.back().copy);
    uniques.pop_back();
  }
  UniqueFrame unique = kept(index, hash, luma_sum, luma);
  if (keep_reference) {
    unique.frame = frame->ref();
    unique.data = luma.data;
    unique.stride = luma.linesize;
    if (pending.empty()) pending = std::move(freed);
  } else {
    unique.copy = std::move(pending);
    unique.data = unique.copy.data();
    unique.stride = luma.width;
    pending = std::move(freed);
  }
  uniques.push_front(std::move(unique));
  return Decision{false, -1};
}

void DuplicateDetector::reset() {
  Impl& s = *impl_;
  if (s.pending.empty()) {
    for (Impl::UniqueFrame& unique : s.uniques)  // keep one copy buffer
      if (!unique.copy.empty()) {
        s.pending = std::move(unique.copy);
        break;
      }
  }
  s.uniques.clear();
  s.any_frame = false;
}

int64_t DuplicateDetector::hash_candidates() const { return impl_->hash_candidates; }
int64_t DuplicateDetector::rejected_by_confirmation() const {
  return impl_->rejected_by_confirmation;
}

}  // namespace upframe::dedup
