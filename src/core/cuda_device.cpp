#include "upframe/cuda_device.hpp"

#include <filesystem>
#include <mutex>

#include "core/frame_planes.hpp"
#include "upframe/error.hpp"

#ifdef UPFRAME_HAVE_CUDA
#include <cuda.h>  // CUcontext, for FFmpeg's AVCUDADeviceContext (no libcuda linked)
#include <cuda_runtime_api.h>
#include <cudnn.h>
#include <spdlog/spdlog.h>
#endif

extern "C" {
#include <libavutil/hwcontext.h>
#ifdef UPFRAME_HAVE_CUDA
#include <libavutil/hwcontext_cuda.h>
#endif
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
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

// "9.19.0" from cuDNN 9's version number (major * 10000 + minor * 100 + patch).
std::string cudnn_version_text(size_t version) {
  return std::to_string(version / 10000) + "." + std::to_string(version / 100 % 100) + "." +
         std::to_string(version % 100);
}

// The cuDNN loaded at run time against the one upframe was compiled with: another major version
// is unusable (its API and ABI differ); an older minor may lack what the headers promised
// (cuDNN 9 guarantees newer libraries run older applications, not the reverse), so it is
// logged once. Empty when usable, else why not.
std::string cudnn_problem() {
  const size_t loaded = cudnnGetVersion();
  if (loaded / 10000 != CUDNN_MAJOR)
    return "cuDNN " + std::to_string(loaded) + " is loaded, upframe was built with cuDNN " +
           cudnn_version_text(CUDNN_VERSION) + " (another major version)";
  static std::once_flag logged;
  std::call_once(logged, [loaded] {
    int driver = 0, runtime = 0;
    cudaDriverGetVersion(&driver);
    cudaRuntimeGetVersion(&runtime);
    spdlog::debug("CUDA driver {}, runtime {}, cuDNN {} (built with {}, for CUDA {})", driver,
                  runtime, cudnn_version_text(loaded), cudnn_version_text(CUDNN_VERSION),
                  cudnnGetCudartVersion());
    if (loaded < CUDNN_VERSION)
      spdlog::warn(
          "cuDNN {} is older than the {} upframe was built with; if a convolution "
          "fails, install cuDNN {} or newer",
          cudnn_version_text(loaded), cudnn_version_text(CUDNN_VERSION),
          cudnn_version_text(CUDNN_VERSION));
  });
  return {};
}

// The CUDA runtime's primary context on device 0, made current on this thread (cudaFree(0)
// starts it), read with the driver's cuCtxGetCurrent through the runtime's entry-point query (no
// libcuda link: upframe runs on machines without a driver). Null, with the reason, on failure.
CUcontext runtime_primary_context(std::string* why) {
  set_primary_context_flags();
  cudaError_t err = cudaSetDevice(0);
  if (err == cudaSuccess) err = cudaFree(nullptr);
  void* entry = nullptr;
  cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
  if (err == cudaSuccess)
    err = cudaGetDriverEntryPointByVersion("cuCtxGetCurrent", &entry, 12000, cudaEnableDefault,
                                           &found);
  if (err != cudaSuccess || found != cudaDriverEntryPointSuccess || !entry) {
    if (why)
      *why = std::string("the CUDA runtime's context is not available (") +
             (err != cudaSuccess ? cudaGetErrorString(err) : "no cuCtxGetCurrent") + ")";
    cudaGetLastError();
    return nullptr;
  }
  CUcontext context = nullptr;
  if (reinterpret_cast<CUresult (*)(CUcontext*)>(entry)(&context) != CUDA_SUCCESS || !context) {
    if (why) *why = "the CUDA runtime's context is not current";
    return nullptr;
  }
  return context;
}

// The CUDA context of a device frame's FFmpeg device.
CUcontext frame_context(const AVFrame* frame) {
  if (!frame->hw_frames_ctx) return nullptr;
  const auto* frames = reinterpret_cast<const AVHWFramesContext*>(frame->hw_frames_ctx->data);
  return static_cast<const AVCUDADeviceContext*>(frames->device_ctx->hwctx)->cuda_ctx;
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
    const std::filesystem::path gpus = "/proc/driver/nvidia/gpus";
    std::error_code ec;
    info.device_found =
        std::filesystem::exists("/dev/nvidia0", ec) ||
        (std::filesystem::is_directory(gpus, ec) && !std::filesystem::is_empty(gpus, ec));
    return info;
  }
  info.device_found = count > index;
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
  if (std::string problem = cudnn_problem(); !problem.empty()) {
    info.reason = std::move(problem);
    return info;
  }
  info.available = true;
  info.name = prop.name;
  info.compute_major = prop.major;
  info.compute_minor = prop.minor;
  return info;
}

#else

bool cuda_built() { return false; }

CudaDeviceInfo cuda_device_info(int) {
  CudaDeviceInfo info;
  info.reason = "CUDA support not built into this upframe";
  return info;
}

#endif

AVBufferRef* create_cuda_hwdevice(bool share_runtime_context, std::string* why) {
  AVBufferRef* device = nullptr;
#ifdef UPFRAME_HAVE_CUDA
  if (share_runtime_context) {
    // The runtime's primary context handed to FFmpeg as is (FFmpeg 5.1's own primary-context
    // option shares it only when the context's flags match exactly, else it makes another and
    // frames cannot stay on the device). FFmpeg neither retains nor releases a context it was
    // given: the runtime keeps it until the process ends.
    const CUcontext context = runtime_primary_context(why);
    if (!context) return nullptr;
    device = av_hwdevice_ctx_alloc(AV_HWDEVICE_TYPE_CUDA);
    if (!device) {
      if (why) *why = "out of memory";
      return nullptr;
    }
    auto* hw = reinterpret_cast<AVHWDeviceContext*>(device->data);
    static_cast<AVCUDADeviceContext*>(hw->hwctx)->cuda_ctx = context;
    if (const int err = av_hwdevice_ctx_init(device); err < 0) {
      av_buffer_unref(&device);
      if (why)
        *why = "cannot open the CUDA device on the runtime's context: " + av_error_string(err);
      return nullptr;
    }
    static std::once_flag logged;
    std::call_once(logged, [] {
      spdlog::debug("FFmpeg's CUDA device uses the CUDA runtime's primary context (handed to it)");
    });
    return device;
  }
#else
  if (share_runtime_context) {
    if (why) *why = "CUDA support not built into this upframe";
    return nullptr;
  }
#endif
  const int err = av_hwdevice_ctx_create(&device, AV_HWDEVICE_TYPE_CUDA, nullptr, nullptr, 0);
  if (err < 0) {
    if (why) *why = "cannot open the CUDA device: " + av_error_string(err);
    return nullptr;
  }
  return device;
}

bool download_device_frame(const AVFrame* device, AVFrame** host, std::string* why) {
#ifdef UPFRAME_HAVE_CUDA
  if (!device->hw_frames_ctx) {
    if (why) *why = "not a device frame";
    return false;
  }
  if (frame_context(device) != runtime_primary_context(why)) {
    if (why && why->empty()) *why = "the frame is on another CUDA context";
    return false;
  }
  const auto format =
      reinterpret_cast<const AVHWFramesContext*>(device->hw_frames_ctx->data)->sw_format;
  PlaneExtent planes[4];
  const int count = visible_planes(format, device->width, device->height, planes);
  if (count == 0) {
    if (why) *why = "unknown data format";
    return false;
  }
  AVFrame* out = av_frame_alloc();
  if (!out) throw Error({}, "out of memory allocating a frame");
  out->width = device->width;
  out->height = device->height;
  out->format = format;
  if (const int err = av_frame_get_buffer(out, 32); err < 0) {
    av_frame_free(&out);
    throw Error({}, "cannot allocate a frame: " + av_error_string(err));
  }
  for (int p = 0; p < count; ++p) {
    const cudaError_t err = cudaMemcpy2D(out->data[p], size_t(out->linesize[p]), device->data[p],
                                         size_t(device->linesize[p]), planes[p].row_bytes,
                                         size_t(planes[p].rows), cudaMemcpyDeviceToHost);
    if (err != cudaSuccess) {
      cudaGetLastError();
      av_frame_free(&out);
      throw Error(
          {}, std::string("cannot copy a frame from device memory: ") + cudaGetErrorString(err));
    }
  }
  *host = out;
  return true;
#else
  (void)device;
  (void)host;
  if (why) *why = "CUDA support not built into this upframe";
  return false;
#endif
}

Frame upload_to_cuda_frame(const Frame& host, std::string* why) {
#ifdef UPFRAME_HAVE_CUDA
  AVBufferRef* device = create_cuda_hwdevice(true, why);
  if (!device) return {};
  AVBufferRef* frames = av_hwframe_ctx_alloc(device);
  AVFrame* frame = nullptr;
  int err = AVERROR(ENOMEM);
  std::string copy_error;
  if (frames) {
    auto* ctx = reinterpret_cast<AVHWFramesContext*>(frames->data);
    ctx->format = AV_PIX_FMT_CUDA;
    ctx->sw_format = host.format();
    ctx->width = host.width();
    ctx->height = host.height();
    err = av_hwframe_ctx_init(frames);
    frame = err >= 0 ? av_frame_alloc() : nullptr;
    if (frame) err = av_hwframe_get_buffer(frames, frame, 0);
    // Plane by plane, every visible row (not av_hwframe_transfer_data: frame_planes.hpp).
    PlaneExtent planes[4];
    const int count =
        frame && err >= 0 ? visible_planes(host.format(), host.width(), host.height(), planes) : 0;
    for (int p = 0; p < count && copy_error.empty(); ++p)
      if (const cudaError_t e =
              cudaMemcpy2D(frame->data[p], size_t(frame->linesize[p]), host.av()->data[p],
                           size_t(host.av()->linesize[p]), planes[p].row_bytes,
                           size_t(planes[p].rows), cudaMemcpyHostToDevice);
          e != cudaSuccess) {
        cudaGetLastError();
        copy_error = cudaGetErrorString(e);
      }
    if (frame && err >= 0 && copy_error.empty()) err = av_frame_copy_props(frame, host.av());
  }
  av_buffer_unref(&frames);
  av_buffer_unref(&device);
  if (err < 0 || !frame || !copy_error.empty()) {
    if (why)
      *why =
          "cannot make a CUDA frame: " + (copy_error.empty() ? av_error_string(err) : copy_error);
    av_frame_free(&frame);
    return {};
  }
  return Frame::adopt(frame);
#else
  (void)host;
  if (why) *why = "CUDA support not built into this upframe";
  return {};
#endif
}

struct DeviceFrameCopier::Impl {
  AVBufferRef* pool = nullptr;  // our CUDA frames context, for the current size and format
#ifdef UPFRAME_HAVE_CUDA
  cudaEvent_t copied = nullptr;
#endif
  ~Impl() {
    av_buffer_unref(&pool);
#ifdef UPFRAME_HAVE_CUDA
    if (copied) cudaEventDestroy(copied);
#endif
  }

  [[noreturn]] static void fail(const std::string& problem) {
    throw Error({}, "copying an NVDEC frame out of its surface: " + problem,
                ExitCode::kProcessingFailed, "decode");
  }

  // The frames context for `source`'s device, sw_format and size (made anew when they change).
  AVBufferRef* pool_for(const AVFrame* source) {
    const auto* source_ctx =
        reinterpret_cast<const AVHWFramesContext*>(source->hw_frames_ctx->data);
    if (pool) {
      const auto* ctx = reinterpret_cast<const AVHWFramesContext*>(pool->data);
      if (ctx->device_ref->data == source_ctx->device_ref->data &&
          ctx->sw_format == source_ctx->sw_format && ctx->width == source->width &&
          ctx->height == source->height)
        return pool;
      av_buffer_unref(&pool);
    }
    pool = av_hwframe_ctx_alloc(source_ctx->device_ref);
    if (!pool) fail("out of memory");
    auto* ctx = reinterpret_cast<AVHWFramesContext*>(pool->data);
    ctx->format = AV_PIX_FMT_CUDA;
    ctx->sw_format = source_ctx->sw_format;
    ctx->width = source->width;
    ctx->height = source->height;
    // initial_pool_size stays 0: FFmpeg's CUDA frame pool then grows on demand.
    if (const int err = av_hwframe_ctx_init(pool); err < 0) {
      av_buffer_unref(&pool);
      fail("cannot make a CUDA frames context: " + av_error_string(err));
    }
    return pool;
  }
};

DeviceFrameCopier::DeviceFrameCopier() : impl_(std::make_unique<Impl>()) {}
DeviceFrameCopier::~DeviceFrameCopier() = default;

Frame DeviceFrameCopier::copy(const Frame& frame) {
#ifdef UPFRAME_HAVE_CUDA
  const AVFrame* source = frame.av();
  if (!frame || !frame.on_device() || !source->hw_frames_ctx) Impl::fail("not a device frame");
  PlaneExtent planes[4];
  const int count = visible_planes(frame.data_format(), frame.width(), frame.height(), planes);
  if (count == 0) Impl::fail("unknown data format");
  AVBufferRef* pool = impl_->pool_for(source);
  Frame out = Frame::adopt(av_frame_alloc());
  if (!out.av()) Impl::fail("out of memory");
  if (const int err = av_hwframe_get_buffer(pool, out.av(), 0); err < 0)
    Impl::fail("no device buffer: " + av_error_string(err));
  auto check = [](cudaError_t err, const char* what) {
    if (err == cudaSuccess) return;
    cudaGetLastError();
    Impl::fail(std::string(what) + " failed: " + cudaGetErrorString(err));
  };
  if (!impl_->copied)
    check(cudaEventCreateWithFlags(&impl_->copied, cudaEventDisableTiming | cudaEventBlockingSync),
          "cudaEventCreate");  // the decode thread sleeps rather than spins while it waits
  // NVDEC's mapping (post-processing into the output surface) runs on the device context's
  // stream, which FFmpeg leaves null: the legacy default stream. Copying there orders the copy
  // after it; waiting for the copy lets the caller release the surface.
  for (int p = 0; p < count; ++p)
    check(cudaMemcpy2DAsync(out.av()->data[p], out.av()->linesize[p], source->data[p],
                            source->linesize[p], planes[p].row_bytes, size_t(planes[p].rows),
                            cudaMemcpyDeviceToDevice, cudaStreamLegacy),
          "cudaMemcpy2DAsync");
  check(cudaEventRecord(impl_->copied, cudaStreamLegacy), "cudaEventRecord");
  check(cudaEventSynchronize(impl_->copied), "copying the frame");
  if (const int err = av_frame_copy_props(out.av(), source); err < 0)
    Impl::fail("cannot copy the frame properties: " + av_error_string(err));
  return out;
#else
  (void)frame;
  Impl::fail("CUDA support not built into this upframe");
#endif
}

}  // namespace upframe
