#include "upframe/upscale/neural_upscaler.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <functional>
#include <thread>

#include "upframe/cuda_device.hpp"
#include "upframe/error.hpp"
#include "upframe/nn/memory_policy.hpp"
#include "upframe/nn/tiling.hpp"
#include "upframe/upscale/colour.hpp"

#ifdef UPFRAME_HAVE_CUDA
#include "upframe/nn/cuda_executor.hpp"
#include "upscale/cuda/device_frame_path.hpp"

extern "C" {
#include <libavutil/pixdesc.h>
}
#endif

namespace upframe {

namespace {

constexpr int kMinTile = nn::kMinOomTile;
// The frame size CUDA workers are sized for before the first frame is known (1080p).
constexpr int kProbeWidth = 1920, kProbeHeight = 1080;

// Set once any worker of an upscaler found fp16 overflow; every worker then runs fp32.
struct Fp16Overflow {
  std::atomic<bool> found{false};
  std::string model;
};

class NeuralWorker : public UpscaleWorker {
 public:
  using ExecutorFactory = std::function<std::unique_ptr<nn::Executor>(nn::Precision)>;
  NeuralWorker(ExecutorFactory make_executor, nn::Precision precision,
               std::shared_ptr<Fp16Overflow> overflow, int tile, int overlap, int alignment,
               int scale)
      : make_executor_(std::move(make_executor)),
        precision_(precision),
        overflow_(std::move(overflow)),
        executor_(make_executor_(precision_)),
        tile_(tile),
        overlap_(overlap),
        alignment_(alignment),
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
      if (precision_ == nn::Precision::kFp16 && overflow_->found) use_fp32();
#ifdef UPFRAME_HAVE_CUDA
      if ((input.on_device() || !host_frames_tiled_) && DeviceFramePath::takes(input)) {
        if (Frame out = upscale_on_device(input)) return out;
      } else if (input.on_device() && !host_route_logged_) {
        host_route_logged_ = true;
        spdlog::info(
            "device frames in {} are converted on the host (the device colour code takes "
            "nv12, p010, yuv420p and yuv420p10le)",
            av_get_pix_fmt_name(input.data_format()) ? av_get_pix_fmt_name(input.data_format())
                                                     : "this format");
      }
#endif
      return upscale_on_host(input, [&](const nn::Tensor& rgb) { return run_network(rgb); });
    } catch (const Error& e) {
      if (!e.stage().empty()) throw;
      throw Error(e.file(), e.problem(), e.code(), "upscale", e.frame_index());
    }
  }

  // Tile reuse: the network on the changed tiles' windows only, through the host (a device
  // frame is downloaded; the CUDA executor uploads each window), whatever the backend.
  Frame upscale_tiles(const Frame& input, const TileMask& mask) override {
    try {
      if (precision_ == nn::Precision::kFp16 && overflow_->found) use_fp32();
      return upscale_on_host(input, [&](const nn::Tensor& rgb) { return run_tiles(rgb, mask); });
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
        return device_path_->upscale(input, scale_, tile_, overlap_, alignment_,
                                     precision_ == nn::Precision::kFp16);
      } catch (const NonFiniteOutput& e) {
        fp16_overflowed(e.what());  // and again, in fp32
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
  bool host_route_logged_ = false;  // a device frame in a format the device path does not take
#endif

  // Frame -> RGB -> `network` -> frame on the host, run again in fp32 if fp16 overflowed.
  template <typename Network>
  Frame upscale_on_host(const Frame& input, Network&& network) {
    const Frame host = input.to_host();  // rgb_to_frame copies the format of a host frame
    const nn::Tensor rgb = colour::frame_to_rgb(host);
    nn::Tensor result = network(rgb);
    if (precision_ == nn::Precision::kFp16) {
      const auto bad = std::count_if(result.data.begin(), result.data.end(),
                                     [](float v) { return !std::isfinite(v); });
      if (bad > 0) {
        fp16_overflowed(std::to_string(bad) + " of " + std::to_string(result.data.size()) +
                        " output values are not finite");
        result = network(rgb);
      }
    }
    for (float& v : result.data) v = colour::clamp01(v);
    return colour::rgb_to_frame(result, host);
  }

  // The changed tiles of `mask`, each from a window with the receptive radius (plus the chroma
  // margin) of context, so their pixels, and that margin, are the whole frame's result; the
  // reused tiles stay 0. Windows no bigger than the memory tile's (tile_), so they fit where
  // the tiles fit.
  nn::Tensor run_tiles(const nn::Tensor& rgb, const TileMask& mask) {
    if (mask.width != rgb.width || mask.height != rgb.height)
      throw Error({}, "the tile reuse mask is for a " + std::to_string(mask.width) + "x" +
                          std::to_string(mask.height) + " frame, the frame is " +
                          std::to_string(rgb.width) + "x" + std::to_string(rgb.height));
    for (;;) {
      try {
        const int margin = overlap_ + kReuseExtraMargin;
        const int max_run = tile_ > 0 ? std::max(1, tile_ / mask.tile) : 8;
        nn::Tensor output(rgb.channels, rgb.height * scale_, rgb.width * scale_);
        nn::run_reuse_windows(*executor_, rgb, reuse_windows(mask, margin, max_run, alignment_),
                              tile_, overlap_, scale_, kReuseExtraMargin, output, alignment_);
        return output;
      } catch (const nn::CudaOutOfMemory& e) {
        shrink_tiles(e, rgb.width, rgb.height);
      }
    }
  }

  // Out of GPU memory (docs/INTERFACE.md, "Pipeline and fallbacks"): a fresh executor (the old
  // one's cached plans freed) with tiles half the size, down to kMinTile, before giving up. The
  // tiled result equals the untiled one, so the output does not change. Never raised by the CPU
  // executor.
  nn::Tensor run_network(const nn::Tensor& rgb) {
    for (;;) {
      try {
        return nn::run_tiled(*executor_, rgb, tile_, overlap_, scale_, alignment_);
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
    executor_ = make_executor_(precision_);
    tile_ = next;
  }

  // cuDNN's fp16 convolutions store their result in fp16 before the fp32 bias and activation:
  // a value above 65504 becomes inf, then NaN (non_finite.hpp). The frame is run again in
  // fp32, and so is every later one, on every worker (one log line).
  void fp16_overflowed(const std::string& what) {
    if (!overflow_->found.exchange(true))
      spdlog::warn(
          "{}: fp16 overflow ({}); upscaling in fp32 from now on (--precision fp32 "
          "skips fp16)",
          overflow_->model, what);
    use_fp32();
  }

  void use_fp32() {
#ifdef UPFRAME_HAVE_CUDA
    device_path_.reset();  // it refers to the executor
#endif
    executor_.reset();
    precision_ = nn::Precision::kFp32;
    executor_ = make_executor_(precision_);
  }

  ExecutorFactory make_executor_;
  nn::Precision precision_;
  std::shared_ptr<Fp16Overflow> overflow_;
  std::unique_ptr<nn::Executor> executor_;
  int tile_;
  int overlap_;
  int alignment_;  // the model's tile_alignment: windows start on its grid
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
  auto overflow = std::make_shared<Fp16Overflow>();
  overflow->model = info.name;
  fp16_overflow_ = overflow;
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
  // Global pooling, GroupNorm, DySample: no overlap makes tiles equal the whole image.
  if (tile > 0 && info.global_context)
    spdlog::warn(
        "{}: its output depends on the whole image, so tiles of {} pixels may change it "
        "(--tile 0 for the exact result)",
        info.name, tile);
  total_threads_ = threads > 0 ? threads : int(std::max(1u, std::thread::hardware_concurrency()));
  threads_per_worker_ = total_threads_;
}

std::string NeuralUpscaler::name() const { return model_->info().name; }
int NeuralUpscaler::scale() const { return model_->info().scale; }
int NeuralUpscaler::receptive_radius() const {
  const nn::ModelInfo& info = model_->info();
  return info.global_context ? -1 : info.receptive_radius;
}

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
    make_executor = [model = model_](nn::Precision precision) {
      return nn::make_cuda_executor(model, precision);
    };
  else
    make_executor = [model = model_, threads = threads_per_worker_](nn::Precision precision) {
      return nn::make_cpu_executor(model, precision, threads);
    };
  return std::make_unique<NeuralWorker>(
      std::move(make_executor), precision_, std::static_pointer_cast<Fp16Overflow>(fp16_overflow_),
      tile_, overlap_, model_->info().tile_alignment, model_->info().scale);
}

}  // namespace upframe
