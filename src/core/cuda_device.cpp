#include "upframe/cuda_device.hpp"

#include <filesystem>
#include <mutex>

#include "upframe/error.hpp"

#ifdef UPFRAME_HAVE_CUDA
#include <cuda_runtime_api.h>
#include <cudnn.h>
#include <spdlog/spdlog.h>
#endif

extern "C" {
#include <libavutil/hwcontext.h>
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
  const AVPixelFormat format = frame.data_format();
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(format);
  int row_bytes[4] = {0, 0, 0, 0};
  if (!desc || av_image_fill_linesizes(row_bytes, format, frame.width()) < 0)
    Impl::fail("unknown data format");
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
  for (int p = 0; p < av_pix_fmt_count_planes(format); ++p) {
    const int rows =
        p == 0 || p == 3 ? frame.height() : AV_CEIL_RSHIFT(frame.height(), desc->log2_chroma_h);
    check(cudaMemcpy2DAsync(out.av()->data[p], out.av()->linesize[p], source->data[p],
                            source->linesize[p], row_bytes[p], rows, cudaMemcpyDeviceToDevice,
                            cudaStreamLegacy),
          "cudaMemcpy2DAsync");
  }
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
