// The CUDA upscaler's device-resident path (device_frame_path.hpp). Compiled, never run on a GPU.
#include "upscale/cuda/device_frame_path.hpp"

#include <cuda_runtime_api.h>
#include <spdlog/spdlog.h>

#include <vector>

#include "upframe/cuda_check.hpp"
#include "upframe/error.hpp"
#include "upframe/nn/cuda_executor.hpp"
#include "upframe/nn/tiling.hpp"
#include "upframe/upscale/colour.hpp"
#include "upscale/cuda/device_yuv_frame.hpp"
#include "upscale/cuda/non_finite.hpp"

extern "C" {
#include <libavutil/buffer.h>
#include <libavutil/imgutils.h>
#include <libavutil/macros.h>
}

namespace upframe {

namespace {

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

}  // namespace

class DeviceFramePath::Impl {
 public:
  explicit Impl(nn::cuda::CudaExecutor& executor)
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
  ~Impl() {
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
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  Frame upscale(const Frame& input, int scale, int tile, int overlap, int alignment,
                bool check_finite) {
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
    run_network(rgb_in, w, h, rgb_out, scale, tile, overlap, alignment);
    if (check_finite) {
      if (!non_finite_) non_finite_ = std::make_unique<upscale_cuda::NonFiniteCounter>();
      if (const auto bad = non_finite_->count(rgb_out, 3 * size_t(out_w) * out_h, stream))
        throw NonFiniteOutput(std::to_string(bad) + " of " +
                              std::to_string(3 * size_t(out_w) * out_h) +
                              " output values are not finite");
    }
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
                   int overlap, int alignment) {
    const std::vector<nn::TileWindow> windows = nn::tile_windows(w, h, tile, overlap, alignment);
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
  std::unique_ptr<upscale_cuda::NonFiniteCounter> non_finite_;
};

DeviceFramePath::DeviceFramePath(nn::cuda::CudaExecutor& executor)
    : impl_(std::make_unique<Impl>(executor)) {}

DeviceFramePath::~DeviceFramePath() = default;

bool DeviceFramePath::takes(bool on_device, AVPixelFormat data_format) {
  colour::cuda::DeviceYuvFormat format{};
  if (on_device) return colour::cuda::device_yuv_format(data_format, &format);
  return data_format == AV_PIX_FMT_YUV420P || data_format == AV_PIX_FMT_YUV420P10LE;
}

Frame DeviceFramePath::upscale(const Frame& input, int scale, int tile, int overlap, int alignment,
                               bool check_finite) {
  return impl_->upscale(input, scale, tile, overlap, alignment, check_finite);
}

}  // namespace upframe
