// The thresholds and the confirmation measures of two luma planes (upframe/dedup/detector.hpp),
// apart from the detector itself so the CUDA-only device-check kit, which has no FFmpeg frames,
// compiles them with the device detector.
#include <string>
#include <utility>
#include <vector>

#include "dedup/kernels.hpp"
#include "upframe/dedup/detector.hpp"
#include "upframe/error.hpp"

namespace upframe::dedup {

Thresholds default_thresholds() {
  // Chosen on the clips tests/dedup generates; the measured margins are in docs/DEDUP.md.
  Thresholds t;
  t.max_mean_abs_diff = 2.5;
  t.max_abs_signed_mean_diff = 0.6;
  t.max_block_mean_abs_diff = 11.0;
  t.max_motion = 0.095;
  t.max_local_motion = 0.78;
  t.local_motion_min_rms = 13.5;
  t.max_zoom_motion = 0.11;
  t.max_change_length = 40;
  t.change_min_rms = 3;
  return t;
}

Thresholds exact_thresholds() { return Thresholds{}; }

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
  // Motion from a to b: the same orientation as the detector (the kept frame to the new one).
  thread_local detail::MotionField field;  // reused: its blocks keep their capacity
  detail::motion_field_8bit(pa, sa, pb, sb, a.width, a.height, field);
  return detail::measures_from_sums(detail::difference_8bit(pa, sa, pb, sb, a.width, a.height),
                                    field, a.width, a.height, default_thresholds());
}

}  // namespace upframe::dedup
