#include "upframe/upscale/neural_upscaler.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <functional>
#include <thread>

#include "upframe/cuda_device.hpp"
#include "upframe/error.hpp"
#include "upframe/nn/tiling.hpp"
#include "upframe/upscale/colour.hpp"

namespace upframe {

namespace {

// Frames under this many input pixels a side are not tiled smaller after running out of GPU
// memory: the overlap would dominate.
constexpr int kMinTile = 32;
// The frame size CUDA workers are sized for before the first frame is known (1080p).
constexpr int kProbeWidth = 1920, kProbeHeight = 1080;

class NeuralWorker : public UpscaleWorker {
 public:
  using ExecutorFactory = std::function<std::unique_ptr<nn::Executor>()>;
  NeuralWorker(ExecutorFactory make_executor, int tile, int overlap, int scale)
      : make_executor_(std::move(make_executor)),
        executor_(make_executor_()),
        tile_(tile),
        overlap_(overlap),
        scale_(scale) {}

  Frame upscale(const Frame& input) override {
    try {
      const nn::Tensor rgb = colour::frame_to_rgb(input);
      nn::Tensor result = run_network(rgb);
      for (float& v : result.data) v = colour::clamp01(v);
      return colour::rgb_to_frame(result, input);
    } catch (const Error& e) {
      if (!e.stage().empty()) throw;
      throw Error(e.file(), e.problem(), e.code(), "upscale", e.frame_index());
    }
  }

 private:
  // Out of GPU memory (SPEC section 6): a fresh executor (the old one's cached plans freed)
  // with tiles half the size, down to kMinTile, before giving up. The tiled result equals the
  // untiled one, so the output does not change. Never raised by the CPU executor.
  nn::Tensor run_network(const nn::Tensor& rgb) {
    for (;;) {
      try {
        return nn::run_tiled(*executor_, rgb, tile_, overlap_, scale_);
      } catch (const nn::CudaOutOfMemory& e) {
        const int current = tile_ > 0 ? tile_ : std::max(rgb.width, rgb.height);
        const int next = std::max(kMinTile, current / 2 / 16 * 16);
        if (current <= kMinTile)
          throw Error({}, e.problem() + ", even with tiles of " + std::to_string(current) +
                              " pixels");
        spdlog::warn("{} with tiles of {} pixels; retrying with tiles of {}", e.problem(),
                     current, next);
        executor_.reset();
        executor_ = make_executor_();
        tile_ = next;
      }
    }
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

size_t NeuralUpscaler::cuda_worker_bytes(int tile) const {
  size_t window_w = kProbeWidth, window_h = kProbeHeight;
  if (tile > 0) {
    window_w = std::min<size_t>(window_w, tile + 2 * overlap_);
    window_h = std::min<size_t>(window_h, tile + 2 * overlap_);
  }
  return bytes_per_pixel_ * window_w * window_h;
}

int NeuralUpscaler::preferred_workers() const {
  if (!cuda_) return 1;
  // Tiles of at least 256 pixels (or the size asked for) for every worker.
  const size_t each = cuda_worker_bytes(auto_tile_ ? 256 : tile_);
  return int(std::clamp<size_t>(cuda_usable_bytes() / std::max<size_t>(1, each), 1,
                                kMaxCudaWorkers));
}

int NeuralUpscaler::max_workers() const {
  if (!cuda_) return 64;
  const size_t each = cuda_worker_bytes(auto_tile_ ? kMinTile : tile_);
  return int(std::clamp<size_t>(cuda_usable_bytes() / std::max<size_t>(1, each), 1,
                                2 * kMaxCudaWorkers));
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
    tile_ = nn::tile_for_budget(*model_, bytes_per_pixel_, cuda_usable_bytes() / workers);
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
