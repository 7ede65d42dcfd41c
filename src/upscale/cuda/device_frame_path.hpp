// The CUDA upscaler's device-resident path: a device frame (NVDEC) or a host yuv420p /
// yuv420p10le frame upscaled without leaving the device, then downloaded once (docs/GPU.md,
// "The device-resident path").
#pragma once

#include <memory>

#include "nn/cuda/cuda_executor.hpp"
#include "upframe/frame.hpp"

namespace upframe {

// An NVDEC frame upscaled without leaving the device: colour conversion and the network on the
// executor's stream (tiled by the same window plan as run_tiled, windows cut and cores stitched
// with device-to-device copies), then the finished YUV frame (yuv420p or yuv420p10le, what the
// host path gives) downloaded once, on a copy stream of the worker's, into page-locked memory.
// upscale() returns with the download queued, its event on the frame (Frame::wait_ready), so
// the next frame's colour conversion and network run while it copies. Two device output
// buffers alternate: a frame's conversion back to YUV waits only for the download of the frame
// two before. Compiled, never run on a GPU.
class DeviceFramePath {
 public:
  explicit DeviceFramePath(nn::cuda::CudaExecutor& executor);
  ~DeviceFramePath();
  DeviceFramePath(const DeviceFramePath&) = delete;
  DeviceFramePath& operator=(const DeviceFramePath&) = delete;

  // Host frames this path takes (uploaded once); others go through run_tiled.
  static bool takes_host_frame(const Frame& frame);

  Frame upscale(const Frame& input, int scale, int tile, int overlap);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace upframe
