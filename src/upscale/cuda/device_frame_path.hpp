// The CUDA upscaler's device-resident path: a device frame (NVDEC) or a host yuv420p /
// yuv420p10le frame upscaled without leaving the device, then downloaded once (docs/GPU.md,
// "The device-resident path").
#pragma once

#include <memory>
#include <stdexcept>

#include "upframe/frame.hpp"

namespace upframe::nn::cuda {
class CudaExecutor;
}

namespace upframe {

// An NVDEC frame upscaled without leaving the device: colour conversion and the network on the
// executor's stream (tiled by the same window plan as run_tiled, windows cut and cores stitched
// with device-to-device copies), then the finished YUV frame (yuv420p or yuv420p10le, what the
// host path gives) downloaded once, on a copy stream of the worker's, into page-locked memory.
// upscale() returns with the download queued, its event on the frame (Frame::wait_ready), so
// the next frame's colour conversion and network run while it copies. Two device output
// buffers alternate: a frame's conversion back to YUV waits only for the download of the frame
// two before. Compiled, never run on a GPU.
// The network gave inf or NaN values (fp16 overflow, non_finite.hpp).
class NonFiniteOutput : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class DeviceFramePath {
 public:
  explicit DeviceFramePath(nn::cuda::CudaExecutor& executor);
  ~DeviceFramePath();
  DeviceFramePath(const DeviceFramePath&) = delete;
  DeviceFramePath& operator=(const DeviceFramePath&) = delete;

  // Whether this path takes a frame: a device frame whose data format the device colour code
  // reads (nv12, p010, yuv420p, yuv420p10le; NVDEC's 4:4:4 and 12-bit frames are not), or a
  // host yuv420p / yuv420p10le frame (uploaded once). Others go to the host route (run_tiled).
  // A pure function of the frame's place and format.
  static bool takes(bool on_device, AVPixelFormat data_format);
  static bool takes(const Frame& frame) { return takes(frame.on_device(), frame.data_format()); }

  // `check_finite` (fp16): the network's output is counted for inf/NaN before the conversion
  // back (the worker then waits for its network); any throws NonFiniteOutput. `alignment`:
  // the model's tile_alignment (nn::tile_windows).
  Frame upscale(const Frame& input, int scale, int tile, int overlap, int alignment,
                bool check_finite = false);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace upframe
