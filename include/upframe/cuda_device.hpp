// Is a CUDA device usable here? One probe shared by every stage's GPU path, so each fallback
// can log the same reason ("no CUDA driver", "CUDA support not built", ...).
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "upframe/frame.hpp"

extern "C" {
#include <libavutil/buffer.h>
}

namespace upframe {

struct CudaDeviceInfo {
  bool available = false;
  // A GPU is there, usable or not: the CUDA driver counted it, or the NVIDIA kernel driver
  // lists one. Without one, "no CUDA" is the normal case, not worth a line.
  bool device_found = false;
  std::string reason;  // why not, when !available
  std::string name;    // "NVIDIA H100 80GB HBM3"
  int compute_major = 0, compute_minor = 0;
  size_t free_bytes = 0, total_bytes = 0;
};

// True when this upframe was built with the CUDA backend.
bool cuda_built();

// Probes device `index` (cudaGetDeviceCount, properties, cudaMemGetInfo). Any error, a missing
// driver included, is "not available" with the reason; never throws.
CudaDeviceInfo cuda_device_info(int index = 0);

// FFmpeg's CUDA device (for NVDEC, hw frames) on device 0. `share_runtime_context`: on the CUDA
// runtime's primary context, so upframe's kernels can read its frames (FFmpeg then wants the
// context's scheduling flag to be blocking sync, which cuda_device_info() sets before the
// runtime starts it); else a private context, for frames that are only downloaded. Null, with
// the reason in `why`, when it cannot be opened.
AVBufferRef* create_cuda_hwdevice(bool share_runtime_context, std::string* why);

// A copy of host frame `host` in device memory as FFmpeg's hwaccel gives it (AV_PIX_FMT_CUDA,
// the host format as sw_format, properties copied), on the runtime's primary context. An empty
// Frame, with the reason in `why`, where that fails. For tests and benchmarks.
Frame upload_to_cuda_frame(const Frame& host, std::string* why);

// Copies NVDEC frames out of the decoder's surfaces. In FFmpeg 5.1 an NVDEC frame is the
// decoder's own surface, mapped; the surfaces are a fixed pool (the DPB plus extra_hw_frames
// plus one per frame thread) that cuvidCreateDecoder caps at 32, and a frame held downstream
// keeps its surface. A copy into a growable pool of device buffers releases the surface at
// once, so the frames the pipeline holds (the detector's window, the pre-load window, the
// workers) cost device memory, not surfaces. Not thread-safe: one per decoder.
class DeviceFrameCopier {
 public:
  DeviceFrameCopier();
  ~DeviceFrameCopier();
  DeviceFrameCopier(const DeviceFrameCopier&) = delete;
  DeviceFrameCopier& operator=(const DeviceFrameCopier&) = delete;

  // A device frame (same device context, sw_format, size and properties) holding a copy of
  // `frame`, complete on return (copied on the legacy default stream, where NVDEC's mapping
  // runs, then waited for). Throws upframe::Error (stage "decode") when the copy fails.
  Frame copy(const Frame& frame);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace upframe
