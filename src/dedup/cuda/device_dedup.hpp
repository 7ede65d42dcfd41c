// Duplicate detection on luma planes in device memory (an NVDEC surface): the average hash and
// the confirmation measures computed by CUDA kernels, bit-identical to the CPU detector
// (docs/INTERFACE.md). The kernels sum integers with 64-bit atomics (the same sums in any order);
// the hash bits come from the same math::hash_from_cell_sums, and the decision and the motion
// solve (doubles) run on the host in the same functions the CPU path uses (kernels.hpp).
// Plain C++ header: host code (the pipeline, tests/cuda) includes it without nvcc.
#pragma once

#include <cstdint>
#include <memory>

#include "../kernels.hpp"
#include "upframe/dedup/detector.hpp"
#include "upframe/dedup/hash.hpp"
#include "upframe/dedup/luma.hpp"

namespace upframe::dedup::cuda {

// How the decoder stores luma samples.
enum class LumaSamples {
  k8Bit,      // NV12 / yuv420p plane 0: one byte a sample
  kP010,      // P010 plane 0 (NVDEC's 10-bit output): 16-bit words, the 10 bits in the HIGH
              // bits: read as 16-bit samples, >> 8 gives the 10-bit sample >> 2
  k10BitLow,  // yuv420p10le plane 0: 16-bit words, the 10 bits in the LOW bits: >> 2
};

// A LumaView of a device plane: `device_data` is a device pointer, `pitch_bytes` the bytes
// between rows. bit_depth 8, 16 (P010) or 10 (low-bit 10-bit), as luma_of() gives for the same
// formats on the host.
LumaView device_luma(const void* device_data, int pitch_bytes, int width, int height,
                     LumaSamples samples);

// The luma plane of a device frame (AV_PIX_FMT_CUDA, e.g. from NVDEC) whose data format has a
// plain luma plane (nv12, p010, yuv420p, yuv420p10le, p016, yuv444p...), read as luma_of()
// reads the same format on the host. Throws upframe::Error for a host frame or another format.
LumaView device_luma_of(const Frame& frame);

struct DeviceHash {
  AverageHash hash;
  uint64_t luma_sum = 0;  // sum of the 8-bit samples (the confirmation's signed mean needs it)
};

// Kernels on one CUDA stream, with their scratch buffers (allocated on first use, grown as
// needed). Every call waits for its results (a few hundred bytes copied back). All LumaView
// arguments are device planes (device_luma()); 16-bit planes need 2-byte aligned data and an
// even pitch. Errors (CUDA failures, bad planes) throw upframe::Error with stage "detect".
// Not thread-safe: one per worker.
class DeviceDedup {
 public:
  // `stream`: a cudaStream_t, null for the default stream.
  explicit DeviceDedup(void* stream = nullptr);
  ~DeviceDedup();
  DeviceDedup(const DeviceDedup&) = delete;
  DeviceDedup& operator=(const DeviceDedup&) = delete;

  // average_hash() of the CPU, plus the luma sum (hash_and_copy's `luma_sum`).
  DeviceHash average_hash(const LumaView& luma, int hash_size);

  // The full sums of the difference measures and of the motion fit, equal to
  // detail::difference_8bit / detail::motion_field_8bit on the 8-bit planes.
  detail::DifferenceSums difference_sums(const LumaView& a, const LumaView& b);
  // The field lives in this object until the next call (its memory is reused).
  const detail::MotionField& motion_field(const LumaView& a, const LumaView& b);

  // measure_difference() of the CPU (same measures, from the same host code).
  DifferenceMeasures measure_difference(const LumaView& a, const LumaView& b);

  // The detector's confirmation of b (new) against a (the kept unique frame) with the planes'
  // luma sums from average_hash(): detail::confirm_duplicate, the CPU's decision code, fed by
  // the kernels' sums (the motion pass only runs if the difference measures accept).
  bool confirm_duplicate(const LumaView& a, uint64_t sum_a, const LumaView& b, uint64_t sum_b,
                         const Thresholds& thresholds);

 private:
  struct Buffers;
  void* stream_ = nullptr;
  std::unique_ptr<Buffers> buffers_;
  detail::MotionField field_;  // motion_field's result, its memory reused
};

}  // namespace upframe::dedup::cuda
