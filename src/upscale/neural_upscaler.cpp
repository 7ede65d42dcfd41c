#include "upframe/upscale/neural_upscaler.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <functional>
#include <thread>

#include "nn/memory_policy.hpp"
#include "upframe/cuda_device.hpp"
#include "upframe/error.hpp"
#include "upframe/nn/tiling.hpp"
#include "upframe/upscale/colour.hpp"

#ifdef UPFRAME_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "core/cuda_check.hpp"
#include "nn/cuda/cuda_executor.hpp"
#include "upscale/cuda/device_yuv_frame.hpp"

extern "C" {
#include <libavutil/buffer.h>
#include <libavutil/imgutils.h>
#include <libavutil/macros.h>
}
#endif

namespace upframe {

namespace {

constexpr int kMinTile = nn::kMinOomTile;
// The frame size CUDA workers are sized for before the first frame is known (1080p).
constexpr int kProbeWidth = 1920, kProbeHeight = 1080;

#ifdef UPFRAME_HAVE_CUDA
// Events a host thread waits for (cudaEventSynchronize): cudaEventBlockingSync makes the wait
// sleep; without it the thread may spin, and on a card without NVENC the encoder needs every
// CPU core.
constexpr unsigned kHostWaitedEvent = cudaEventDisableTiming | cudaEventBlockingSync;

void check_upscale(cudaError_t err, const char* what) {
  check_cuda(err, "CUDA upscaling", what, "upscale");
}

// The download of a finished frame, in flight on a copy stream; the reader waits for it
// (Frame::wait_ready). It keeps the input frame alive until then: the worker's stream may still
// be reading it when upscale_started() returns.
class DownloadPending final : public FramePending {
 public:
  DownloadPending(cudaEvent_t done, Frame input) : done_(done), input_(std::move(input)) {}
  ~DownloadPending() override {
    // Never waited for (a failed job): the buffers may only go back once the copy is over.
    if (done_) cudaEventSynchronize(done_);
    if (done_) cudaEventDestroy(done_);
  }
  DownloadPending(const DownloadPending&) = delete;
  DownloadPending& operator=(const DownloadPending&) = delete;

  void wait() override {
    if (!done_) return;
    const cudaError_t err = cudaEventSynchronize(done_);  // reports a failed kernel too
    cudaEventDestroy(done_);
    done_ = nullptr;
    input_ = Frame();
    check_upscale(err, "running the network and downloading the frame");
  }

 private:
  cudaEvent_t done_;
  Frame input_;
};

// Page-locked host buffers for finished frames. A download into pageable memory is staged by the
// driver and returns only when it is over; into page-locked memory it is a DMA that the next
// frame's work overlaps. Allocating and freeing page-locked memory is slow (cudaFreeHost
// synchronises the device), so buffers are reused through an AVBufferPool: a frame given back
// by the encoder returns its buffer to the pool.
class PinnedFramePool {
 public:
  PinnedFramePool() = default;
  ~PinnedFramePool() { av_buffer_pool_uninit(&pool_); }  // buffers still out are freed later
  PinnedFramePool(const PinnedFramePool&) = delete;
  PinnedFramePool& operator=(const PinnedFramePool&) = delete;

  // A 4:2:0 host frame in page-locked memory (64-byte aligned rows); an empty Frame where
  // page-locked memory cannot be had.
  Frame frame(int width, int height, AVPixelFormat format, int sample_bytes) {
    const int chroma_w = (width + 1) / 2, chroma_h = (height + 1) / 2;
    const size_t luma_pitch = FFALIGN(size_t(width) * sample_bytes, 64);
    const size_t chroma_pitch = FFALIGN(size_t(chroma_w) * sample_bytes, 64);
    const size_t bytes = luma_pitch * height + 2 * chroma_pitch * chroma_h + 64;  // SIMD overread
    if (!pool_ || bytes_ != bytes) {
      av_buffer_pool_uninit(&pool_);
      pool_ = av_buffer_pool_init2(bytes, nullptr, allocate, nullptr);
      bytes_ = bytes;
      if (!pool_) return {};
    }
    AVBufferRef* buffer = av_buffer_pool_get(pool_);
    if (!buffer) return {};
    Frame out = Frame::adopt(av_frame_alloc());
    AVFrame* f = out.av();
    if (!f) {
      av_buffer_unref(&buffer);
      return {};
    }
    f->buf[0] = buffer;
    f->width = width;
    f->height = height;
    f->format = format;
    f->data[0] = buffer->data;
    f->data[1] = f->data[0] + luma_pitch * height;
    f->data[2] = f->data[1] + chroma_pitch * chroma_h;
    f->linesize[0] = int(luma_pitch);
    f->linesize[1] = f->linesize[2] = int(chroma_pitch);
    return out;
  }

 private:
  static AVBufferRef* allocate(void*, size_t bytes) {
    void* memory = nullptr;
    if (cudaHostAlloc(&memory, bytes, cudaHostAllocDefault) != cudaSuccess) {
      cudaGetLastError();
      return nullptr;
    }
    AVBufferRef* buffer = av_buffer_create(
        static_cast<uint8_t*>(memory), bytes, [](void*, uint8_t* data) { cudaFreeHost(data); },
        nullptr, 0);
    if (!buffer) cudaFreeHost(memory);
    return buffer;
  }

  AVBufferPool* pool_ = nullptr;
  size_t bytes_ = 0;
};

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
  explicit DeviceFramePath(nn::cuda::CudaExecutor& executor)
      : executor_(executor), colour_(executor.stream()) {
    check_upscale(cudaEventCreateWithFlags(&decoded_, cudaEventDisableTiming), "creating an event");
    check_upscale(cudaEventCreateWithFlags(&converted_, cudaEventDisableTiming),
                  "creating an event");
    for (OutputSlot& slot : slots_)
      check_upscale(cudaEventCreateWithFlags(&slot.downloaded, cudaEventDisableTiming),
                    "creating an event");
    check_upscale(cudaEventCreateWithFlags(&uploaded_, kHostWaitedEvent), "creating an event");
    check_upscale(cudaStreamCreateWithFlags(&copy_stream_, cudaStreamNonBlocking),
                  "creating the download stream");
  }
  ~DeviceFramePath() {
    wait_idle_quietly();
    for (DeviceBuffer* buffer :
         {&yuv_in_, &rgb_in_, &rgb_out_, &window_in_, &window_out_, &slots_[0].yuv, &slots_[1].yuv})
      if (buffer->data) cudaFree(buffer->data);
    if (staging_) cudaFreeHost(staging_);
    for (cudaEvent_t event :
         {decoded_, converted_, uploaded_, slots_[0].downloaded, slots_[1].downloaded})
      if (event) cudaEventDestroy(event);
    if (copy_stream_) cudaStreamDestroy(copy_stream_);
  }
  DeviceFramePath(const DeviceFramePath&) = delete;
  DeviceFramePath& operator=(const DeviceFramePath&) = delete;

  // Host frames this path takes (uploaded once); others go through run_tiled.
  static bool takes_host_frame(const Frame& frame) {
    return frame.format() == AV_PIX_FMT_YUV420P || frame.format() == AV_PIX_FMT_YUV420P10LE;
  }

  Frame upscale(const Frame& input, int scale, int tile, int overlap) {
    const colour::cuda::DeviceYuvFrame yuv =
        input.on_device() ? colour::cuda::device_yuv_frame(input) : upload(input);
    const colour::ColourParams params = colour::colour_params(input.av());
    const int w = input.width(), h = input.height();
    const int out_w = w * scale, out_h = h * scale;
    const bool deep = input.bit_depth() > 8;
    const int sample = deep ? 2 : 1;
    const AVPixelFormat out_format = deep ? AV_PIX_FMT_YUV420P10LE : AV_PIX_FMT_YUV420P;
    const int chroma_w = (out_w + 1) / 2, chroma_h = (out_h + 1) / 2;
    const size_t luma_bytes = size_t(out_w) * sample * out_h;
    const size_t chroma_bytes = size_t(chroma_w) * sample * chroma_h;
    float* rgb_in = static_cast<float*>(reserve(rgb_in_, 3 * size_t(w) * h * sizeof(float)));
    float* rgb_out =
        static_cast<float*>(reserve(rgb_out_, 3 * size_t(out_w) * out_h * sizeof(float)));
    OutputSlot& slot = slots_[next_slot_];
    next_slot_ ^= 1;
    auto* planes = static_cast<uint8_t*>(reserve(slot.yuv, luma_bytes + 2 * chroma_bytes));

    colour::cuda::DeviceYuvFrame out_yuv;
    out_yuv.format = deep ? colour::cuda::DeviceYuvFormat::kYuv420p10le
                          : colour::cuda::DeviceYuvFormat::kYuv420p;
    out_yuv.width = out_w;
    out_yuv.height = out_h;
    out_yuv.data[0] = planes;
    out_yuv.data[1] = planes + luma_bytes;
    out_yuv.data[2] = planes + luma_bytes + chroma_bytes;
    out_yuv.pitch[0] = out_w * sample;
    out_yuv.pitch[1] = out_yuv.pitch[2] = chroma_w * sample;

    const cudaStream_t stream = executor_.stream();
    // Frames made on the legacy default stream (an upload by FFmpeg, the decoder's copy out of
    // NVDEC's surface) are not ordered with the worker's non-blocking stream by themselves.
    check_upscale(cudaEventRecord(decoded_, cudaStreamLegacy), "recording the decode event");
    check_upscale(cudaStreamWaitEvent(stream, decoded_, 0), "waiting for the decoder");
    colour_.yuv_to_rgb(yuv, params, rgb_in);
    run_network(rgb_in, w, h, rgb_out, scale, tile, overlap);
    // This slot's previous frame (two back) must be downloaded before it is overwritten.
    if (slot.used)
      check_upscale(cudaStreamWaitEvent(stream, slot.downloaded, 0), "waiting for a download");
    colour_.rgb_to_yuv(rgb_out, out_yuv, params);  // clamps to [0,1] as the host path does
    check_upscale(cudaEventRecord(converted_, stream), "recording the conversion event");
    check_upscale(cudaStreamWaitEvent(copy_stream_, converted_, 0), "ordering the download");

    Frame out = pinned_.frame(out_w, out_h, out_format, sample);
    if (!out) {
      if (!pinned_fallback_logged_)
        spdlog::warn(
            "page-locked host memory unavailable; upscaled frames are downloaded "
            "into pageable memory (the download then stalls the worker)");
      pinned_fallback_logged_ = true;
      out = Frame::allocate(out_w, out_h, out_format);
    }
    if (av_frame_copy_props(out.av(), input.av()) < 0)
      throw Error({}, "cannot copy the frame properties");
    colour::tag_resolved_colour(out.av(), params);
    cudaEvent_t done = nullptr;
    check_upscale(cudaEventCreateWithFlags(&done, kHostWaitedEvent), "creating an event");
    out.set_pending(std::make_shared<DownloadPending>(done, input));
    try {
      const int rows[3] = {out_h, chroma_h, chroma_h};
      for (int p = 0; p < 3; ++p)
        check_upscale(cudaMemcpy2DAsync(out.av()->data[p], out.av()->linesize[p], out_yuv.data[p],
                                        out_yuv.pitch[p], out_yuv.pitch[p], rows[p],
                                        cudaMemcpyDeviceToHost, copy_stream_),
                      "copying the upscaled frame to the host");
      check_upscale(cudaEventRecord(slot.downloaded, copy_stream_), "recording the download event");
      slot.used = true;
      check_upscale(cudaEventRecord(done, copy_stream_), "recording the download event");
    } catch (...) {
      wait_idle_quietly();  // no copy may still write the buffer when `out` gives it back
      throw;
    }
    return out;
  }

 private:
  struct DeviceBuffer {
    void* data = nullptr;
    size_t bytes = 0;
  };
  // The device YUV picture of a finished frame and the event of its download.
  struct OutputSlot {
    DeviceBuffer yuv;
    cudaEvent_t downloaded = nullptr;
    bool used = false;
  };

  void check_shape(int w, int h, int scale) {
    const nn::cuda::ImageShape shape = executor_.output_shape(3, h, w);
    if (shape.channels != 3 || shape.width != w * scale || shape.height != h * scale)
      throw Error({}, "the model gives " + std::to_string(shape.width) + "x" +
                          std::to_string(shape.height) + " for a " + std::to_string(w) + "x" +
                          std::to_string(h) + " input, expected x" + std::to_string(scale));
  }

  // Copies a width x height rectangle of each of the 3 planes between planar float buffers
  // on the device (pitches in floats), on the executor's stream.
  void copy_planes(const float* src, int src_w, int src_h, int src_x, int src_y, float* dst,
                   int dst_w, int dst_h, int dst_x, int dst_y, int width, int height) {
    for (int c = 0; c < 3; ++c)
      check_upscale(cudaMemcpy2DAsync(dst + (size_t(c) * dst_h + dst_y) * dst_w + dst_x,
                                      size_t(dst_w) * sizeof(float),
                                      src + (size_t(c) * src_h + src_y) * src_w + src_x,
                                      size_t(src_w) * sizeof(float), size_t(width) * sizeof(float),
                                      height, cudaMemcpyDeviceToDevice, executor_.stream()),
                    "copying a tile");
  }

  // nn::run_tiled on the device: the same windows (nn::tile_windows), run by run_device.
  void run_network(const float* rgb_in, int w, int h, float* rgb_out, int scale, int tile,
                   int overlap) {
    const std::vector<nn::TileWindow> windows = nn::tile_windows(w, h, tile, overlap);
    if (windows.size() == 1) {
      check_shape(w, h, scale);
      executor_.run_device(rgb_in, 3, h, w, rgb_out);
      return;
    }
    const int win_w = windows.front().win_w, win_h = windows.front().win_h;
    check_shape(win_w, win_h, scale);
    auto* window_in =
        static_cast<float*>(reserve(window_in_, 3 * size_t(win_w) * win_h * sizeof(float)));
    auto* window_out = static_cast<float*>(
        reserve(window_out_, 3 * size_t(win_w) * scale * win_h * scale * sizeof(float)));
    for (const nn::TileWindow& t : windows) {
      copy_planes(rgb_in, w, h, t.win_x, t.win_y, window_in, win_w, win_h, 0, 0, win_w, win_h);
      executor_.run_device(window_in, 3, win_h, win_w, window_out);
      copy_planes(window_out, win_w * scale, win_h * scale, (t.core_x - t.win_x) * scale,
                  (t.core_y - t.win_y) * scale, rgb_out, w * scale, h * scale, t.core_x * scale,
                  t.core_y * scale, t.core_w * scale, t.core_h * scale);
    }
  }

  // A host yuv420p / yuv420p10le frame (what CPU decode gives) as a device picture, uploaded
  // once on the worker's stream: 1.5 or 3 bytes a pixel, where run_tiled moves float RGB
  // tensors both ways. Through a page-locked staging buffer: an upload from pageable memory
  // may wait for the stream, i.e. for the previous frame's network.
  colour::cuda::DeviceYuvFrame upload(const Frame& host) {
    const bool deep = host.format() == AV_PIX_FMT_YUV420P10LE;
    const int sample = deep ? 2 : 1;
    const int w = host.width(), h = host.height(), chroma_w = (w + 1) / 2;
    const int chroma_h = (h + 1) / 2;
    const size_t luma_bytes = size_t(w) * sample * h;
    const size_t chroma_bytes = size_t(chroma_w) * sample * chroma_h;
    const size_t bytes = luma_bytes + 2 * chroma_bytes;
    auto* device = static_cast<uint8_t*>(reserve(yuv_in_, bytes));
    // The previous upload (the first step of the previous frame) is over before the staging
    // buffer is overwritten; by now it nearly always is.
    if (uploaded_once_)
      check_upscale(cudaEventSynchronize(uploaded_), "waiting for the previous upload");
    if (staging_bytes_ < bytes) {
      if (staging_) cudaFreeHost(staging_);
      staging_ = nullptr;
      staging_bytes_ = 0;
      if (cudaHostAlloc(&staging_, bytes, cudaHostAllocDefault) != cudaSuccess) {
        cudaGetLastError();
        staging_ = nullptr;
        throw Error({}, "cannot allocate " + std::to_string(bytes) +
                            " bytes of page-locked host memory to upload a frame");
      }
      staging_bytes_ = bytes;
    }
    colour::cuda::DeviceYuvFrame picture;
    picture.format = deep ? colour::cuda::DeviceYuvFormat::kYuv420p10le
                          : colour::cuda::DeviceYuvFormat::kYuv420p;
    picture.width = w;
    picture.height = h;
    const size_t offsets[3] = {0, luma_bytes, luma_bytes + chroma_bytes};
    const int widths[3] = {w * sample, chroma_w * sample, chroma_w * sample};
    const int rows[3] = {h, chroma_h, chroma_h};
    auto* staged = static_cast<uint8_t*>(staging_);
    for (int p = 0; p < 3; ++p) {
      av_image_copy_plane(staged + offsets[p], widths[p], host.av()->data[p],
                          host.av()->linesize[p], widths[p], rows[p]);
      picture.data[p] = device + offsets[p];
      picture.pitch[p] = widths[p];
    }
    check_upscale(
        cudaMemcpyAsync(device, staged, bytes, cudaMemcpyHostToDevice, executor_.stream()),
        "uploading the frame");
    check_upscale(cudaEventRecord(uploaded_, executor_.stream()), "recording the upload event");
    uploaded_once_ = true;
    return picture;
  }

  // Work from earlier calls may still use any buffer (upscale() returns with it queued).
  void wait_idle() {
    check_upscale(cudaStreamSynchronize(executor_.stream()), "waiting for the worker's stream");
    check_upscale(cudaStreamSynchronize(copy_stream_), "waiting for the downloads");
  }
  void wait_idle_quietly() noexcept {
    if (executor_.stream() && cudaStreamSynchronize(executor_.stream()) != cudaSuccess)
      cudaGetLastError();
    if (copy_stream_ && cudaStreamSynchronize(copy_stream_) != cudaSuccess) cudaGetLastError();
  }

  void* reserve(DeviceBuffer& buffer, size_t bytes) {
    if (buffer.bytes >= bytes) return buffer.data;
    if (buffer.data) {
      wait_idle();
      check_upscale(cudaFree(buffer.data), "freeing a device buffer");
    }
    buffer = {};
    if (cudaMalloc(&buffer.data, bytes) != cudaSuccess) {
      cudaGetLastError();
      buffer.data = nullptr;
      throw nn::CudaOutOfMemory("a frame buffer", bytes);
    }
    buffer.bytes = bytes;
    return buffer.data;
  }

  nn::cuda::CudaExecutor& executor_;
  colour::cuda::DeviceColour colour_;
  cudaStream_t copy_stream_ = nullptr;
  cudaEvent_t decoded_ = nullptr, converted_ = nullptr, uploaded_ = nullptr;
  DeviceBuffer yuv_in_, rgb_in_, rgb_out_, window_in_, window_out_;
  void* staging_ = nullptr;  // page-locked, for upload()
  size_t staging_bytes_ = 0;
  bool uploaded_once_ = false;
  OutputSlot slots_[2];
  int next_slot_ = 0;
  PinnedFramePool pinned_;
  bool pinned_fallback_logged_ = false;
};
#endif

class NeuralWorker : public UpscaleWorker {
 public:
  using ExecutorFactory = std::function<std::unique_ptr<nn::Executor>()>;
  NeuralWorker(ExecutorFactory make_executor, int tile, int overlap, int scale)
      : make_executor_(std::move(make_executor)),
        executor_(make_executor_()),
        tile_(tile),
        overlap_(overlap),
        scale_(scale) {}
#ifdef UPFRAME_HAVE_CUDA
  // The device path uses the executor's stream: it goes first.
  ~NeuralWorker() override { device_path_.reset(); }
#endif

  Frame upscale(const Frame& input) override {
    Frame out = upscale_started(input);
    try {
      out.wait_ready();
    } catch (const Error& e) {
      if (!e.stage().empty()) throw;
      throw Error(e.file(), e.problem(), e.code(), "upscale", e.frame_index());
    }
    return out;
  }

  // A device frame's result comes back with its download in flight (DeviceFramePath).
  Frame upscale_started(const Frame& input) override {
    try {
#ifdef UPFRAME_HAVE_CUDA
      if (input.on_device() || (!host_frames_tiled_ && DeviceFramePath::takes_host_frame(input)))
        if (Frame out = upscale_on_device(input)) return out;
#endif
      const Frame host = input.to_host();  // rgb_to_frame copies the format of a host frame
      const nn::Tensor rgb = colour::frame_to_rgb(host);
      nn::Tensor result = run_network(rgb);
      for (float& v : result.data) v = colour::clamp01(v);
      return colour::rgb_to_frame(result, host);
    } catch (const Error& e) {
      if (!e.stage().empty()) throw;
      throw Error(e.file(), e.problem(), e.code(), "upscale", e.frame_index());
    }
  }

 private:
#ifdef UPFRAME_HAVE_CUDA
  // The device-resident path for an NVDEC frame or a host yuv420p(10le) frame; an empty Frame
  // where it does not apply (a CPU executor). Out of GPU memory: a fresh executor and tiles
  // half the size, as on the host path, down to kMinTile.
  Frame upscale_on_device(const Frame& input) {
    for (;;) {
      nn::cuda::CudaExecutor* executor = executor_->cuda_executor();
      if (!executor) return {};
      try {
        if (!device_path_) device_path_ = std::make_unique<DeviceFramePath>(*executor);
        return device_path_->upscale(input, scale_, tile_, overlap_);
      } catch (const nn::CudaOutOfMemory& e) {
        if (!input.on_device()) {
          // The path's whole-frame buffers may be what does not fit; run_tiled needs none.
          spdlog::warn("{}; host frames are upscaled tile by tile through host memory from now on",
                       e.problem());
          device_path_.reset();
          host_frames_tiled_ = true;
          return {};
        }
        shrink_tiles(e, input.width(), input.height());
      }
    }
  }
  std::unique_ptr<DeviceFramePath> device_path_;
  bool host_frames_tiled_ = false;  // a host frame ran out of memory on the device path
#endif

  // Out of GPU memory (SPEC section 6): a fresh executor (the old one's cached plans freed)
  // with tiles half the size, down to kMinTile, before giving up. The tiled result equals the
  // untiled one, so the output does not change. Never raised by the CPU executor.
  nn::Tensor run_network(const nn::Tensor& rgb) {
    for (;;) {
      try {
        return nn::run_tiled(*executor_, rgb, tile_, overlap_, scale_);
      } catch (const nn::CudaOutOfMemory& e) {
        shrink_tiles(e, rgb.width, rgb.height);
      }
    }
  }

  // After running out of GPU memory: tiles half the current size on a fresh executor (its
  // cached plans and buffers freed), or the error when they are already kMinTile.
  void shrink_tiles(const nn::CudaOutOfMemory& e, int width, int height) {
    const int current = nn::effective_tile(tile_, width, height);
    const int next = nn::smaller_tile_after_oom(tile_, width, height);
    if (next == 0)
      throw Error({}, e.problem() + ", even with tiles of " + std::to_string(current) + " pixels");
    spdlog::warn("{} with tiles of {} pixels; retrying with tiles of {}", e.problem(), current,
                 next);
#ifdef UPFRAME_HAVE_CUDA
    device_path_.reset();  // it refers to the executor
#endif
    executor_.reset();
    executor_ = make_executor_();
    tile_ = next;
  }

  ExecutorFactory make_executor_;
  std::unique_ptr<nn::Executor> executor_;
  int tile_;
  int overlap_;
  int scale_;
};

}  // namespace

NeuralUpscaler::NeuralUpscaler(std::shared_ptr<const nn::Model> model, nn::Precision precision,
                               int tile, int threads, bool cuda)
    : model_(std::move(model)), precision_(precision), cuda_(cuda), auto_tile_(tile < 0) {
  const nn::ModelInfo& info = model_->info();
  if (info.input_channels != 3 || info.output_channels != 3)
    throw Error(info.name + ".param", "the model takes " + std::to_string(info.input_channels) +
                                          " and gives " + std::to_string(info.output_channels) +
                                          " channels; an RGB upscaler needs 3 and 3");
  overlap_ = info.receptive_radius;
  if (cuda_) {
    const CudaDeviceInfo gpu = cuda_device_info();
    if (!gpu.available) throw Error({}, "CUDA device not available: " + gpu.reason);
    cuda_free_bytes_ = gpu.free_bytes;
    bytes_per_pixel_ = nn::cuda_bytes_per_input_pixel(*model_, precision_);
    // Set for real by prepare(), once the worker count is known.
    tile_ = tile < 0 ? nn::tile_for_budget(*model_, bytes_per_pixel_, cuda_usable_bytes()) : tile;
  } else {
    bytes_per_pixel_ = nn::model_bytes_per_input_pixel(*model_);
    tile_ = tile < 0 ? nn::auto_tile_size(*model_, nn::default_cpu_tile_budget_bytes()) : tile;
  }
  total_threads_ = threads > 0 ? threads : int(std::max(1u, std::thread::hardware_concurrency()));
  threads_per_worker_ = total_threads_;
}

std::string NeuralUpscaler::name() const { return model_->info().name; }
int NeuralUpscaler::scale() const { return model_->info().scale; }
std::string NeuralUpscaler::precision() const { return nn::precision_name(precision_); }

size_t NeuralUpscaler::cuda_usable_bytes() const {
  // A fifth of the free memory stays for the CUDA context, cuDNN, the weights and
  // fragmentation; the rest is shared by the workers' activations.
  return cuda_free_bytes_ / 5 * 4;
}

int NeuralUpscaler::cuda_workers_fitting(int tile, int cap) const {
  size_t window_w = kProbeWidth, window_h = kProbeHeight;
  if (tile > 0) {
    window_w = std::min<size_t>(window_w, tile + 2 * overlap_);
    window_h = std::min<size_t>(window_h, tile + 2 * overlap_);
  }
  const size_t each = std::max<size_t>(
      1, bytes_per_pixel_ * window_w * window_h + cuda_frame_bytes(kProbeWidth, kProbeHeight));
  return int(std::clamp<size_t>(cuda_usable_bytes() / each, 1, size_t(cap)));
}

size_t NeuralUpscaler::cuda_frame_bytes(int width, int height) const {
  const size_t scale = model_->info().scale;
  const size_t in = size_t(width) * height, out = in * scale * scale;
  // Planar float RGB in and out; 4:2:0 YUV at up to 16 bits a sample is 3 bytes a pixel: the
  // upload of a host frame and two output slots (one downloads while the next is written).
  return (in + out) * 3 * sizeof(float) + (in + 2 * out) * 3;
}

int NeuralUpscaler::preferred_workers() const {
  if (!cuda_) return 1;
  // Tiles of at least 256 pixels (or the size asked for) for every worker.
  return cuda_workers_fitting(auto_tile_ ? 256 : tile_, kMaxCudaWorkers);
}

int NeuralUpscaler::max_workers() const {
  if (!cuda_) return 64;
  return cuda_workers_fitting(auto_tile_ ? kMinTile : tile_, 2 * kMaxCudaWorkers);
}

size_t NeuralUpscaler::worker_memory_bytes(int width, int height) const {
  const size_t scale = model_->info().scale;
  size_t window_w = width, window_h = height;
  if (tile_ > 0) {
    window_w = std::min<size_t>(width, tile_ + 2 * overlap_);
    window_h = std::min<size_t>(height, tile_ + 2 * overlap_);
  }
  const size_t pixels = size_t(width) * height;
  // Host memory: on CUDA the activations live on the device.
  const size_t activations = cuda_ ? 0 : bytes_per_pixel_ * window_w * window_h;
  const size_t tensors = pixels * 3 * sizeof(float) * (1 + scale * scale);  // RGB in and out
  const size_t frames = pixels * scale * scale * 8;                         // output frame
  return activations + tensors + frames;
}

void NeuralUpscaler::prepare(int workers) {
  workers = std::max(1, workers);
  threads_per_worker_ = std::max(1, total_threads_ / workers);
  if (cuda_ && auto_tile_) {
    // Each worker's share, less its whole-frame buffers (sized for the probe frame), for tiles.
    const size_t share = cuda_usable_bytes() / workers;
    const size_t frames = cuda_frame_bytes(kProbeWidth, kProbeHeight);
    tile_ = nn::tile_for_budget(*model_, bytes_per_pixel_,
                                share > 2 * frames ? share - frames : share / 2);
    spdlog::info("GPU memory: {} MiB free, {} workers, tiles of {} pixels", cuda_free_bytes_ >> 20,
                 workers, tile_);
  }
}

std::unique_ptr<UpscaleWorker> NeuralUpscaler::create_worker() {
  NeuralWorker::ExecutorFactory make_executor;
  if (cuda_)
    make_executor = [model = model_, precision = precision_] {
      return nn::make_cuda_executor(model, precision);
    };
  else
    make_executor = [model = model_, precision = precision_, threads = threads_per_worker_] {
      return nn::make_cpu_executor(model, precision, threads);
    };
  return std::make_unique<NeuralWorker>(std::move(make_executor), tile_, overlap_,
                                        model_->info().scale);
}

}  // namespace upframe
