#include "upframe/cuda_device.hpp"

#include <mutex>

#include "upframe/error.hpp"

#ifdef UPFRAME_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

extern "C" {
#include <libavutil/hwcontext.h>
}

namespace upframe {

#ifdef UPFRAME_HAVE_CUDA

namespace {

// FFmpeg 5.1 shares the primary context only when its flags are exactly blocking sync
// (hwcontext_cuda.c); set them before anything starts the context. Blocking sync also lets host
// threads sleep, not spin, while they wait for a stream.
void set_primary_context_flags() {
  static std::once_flag flags_set;
  std::call_once(flags_set, [] {
    if (cudaSetDeviceFlags(cudaDeviceScheduleBlockingSync) != cudaSuccess) cudaGetLastError();
  });
}

}  // namespace

bool cuda_built() { return true; }

CudaDeviceInfo cuda_device_info(int index) {
  set_primary_context_flags();
  CudaDeviceInfo info;
  int count = 0;
  // Without a driver this is an error ("CUDA driver version is insufficient"), not 0 devices.
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    info.reason = std::string("no usable CUDA driver (") + cudaGetErrorString(err) + ")";
    cudaGetLastError();  // clear the sticky error for later calls
    return info;
  }
  if (count <= index) {
    info.reason = count == 0 ? "no CUDA device present"
                             : "CUDA device " + std::to_string(index) + " not present (" +
                                   std::to_string(count) + " found)";
    return info;
  }
  cudaDeviceProp prop{};
  err = cudaGetDeviceProperties(&prop, index);
  if (err == cudaSuccess) err = cudaSetDevice(index);
  if (err == cudaSuccess) err = cudaMemGetInfo(&info.free_bytes, &info.total_bytes);
  if (err != cudaSuccess) {
    info.reason = std::string("CUDA device ") + std::to_string(index) +
                  " cannot be used: " + cudaGetErrorString(err);
    cudaGetLastError();
    return info;
  }
  info.available = true;
  info.name = prop.name;
  info.compute_major = prop.major;
  info.compute_minor = prop.minor;
  return info;
}

#else

namespace {
void set_primary_context_flags() {}
}  // namespace

bool cuda_built() { return false; }

CudaDeviceInfo cuda_device_info(int) {
  CudaDeviceInfo info;
  info.reason = "CUDA support not built into this upframe";
  return info;
}

#endif

namespace {
// AV_CUDA_USE_PRIMARY_CONTEXT of libavutil/hwcontext_cuda.h, which needs cuda.h to include.
constexpr int kCudaUsePrimaryContext = 1 << 0;
}  // namespace

AVBufferRef* create_cuda_hwdevice(bool share_runtime_context, std::string* why) {
  if (share_runtime_context) set_primary_context_flags();
  AVBufferRef* device = nullptr;
  int err = av_hwdevice_ctx_create(&device, AV_HWDEVICE_TYPE_CUDA, nullptr, nullptr,
                                   share_runtime_context ? kCudaUsePrimaryContext : 0);
  if (err < 0) {
    if (why) *why = "cannot open the CUDA device: " + av_error_string(err);
    return nullptr;
  }
  return device;
}

Frame upload_to_cuda_frame(const Frame& host, std::string* why) {
  AVBufferRef* device = create_cuda_hwdevice(true, why);
  if (!device) return {};
  AVBufferRef* frames = av_hwframe_ctx_alloc(device);
  AVFrame* frame = nullptr;
  int err = AVERROR(ENOMEM);
  if (frames) {
    auto* ctx = reinterpret_cast<AVHWFramesContext*>(frames->data);
    ctx->format = AV_PIX_FMT_CUDA;
    ctx->sw_format = host.format();
    ctx->width = host.width();
    ctx->height = host.height();
    err = av_hwframe_ctx_init(frames);
    frame = err >= 0 ? av_frame_alloc() : nullptr;
    if (frame) err = av_hwframe_get_buffer(frames, frame, 0);
    if (frame && err >= 0) err = av_hwframe_transfer_data(frame, host.av(), 0);
    if (frame && err >= 0) err = av_frame_copy_props(frame, host.av());
  }
  av_buffer_unref(&frames);
  av_buffer_unref(&device);
  if (err < 0 || !frame) {
    if (why) *why = "cannot make a CUDA frame: " + av_error_string(err);
    av_frame_free(&frame);
    return {};
  }
  return Frame::adopt(frame);
}

}  // namespace upframe
