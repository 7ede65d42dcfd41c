#include "upframe/upscale/neural_upscaler.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <thread>

#include "upframe/error.hpp"
#include "upframe/nn/tiling.hpp"
#include "upframe/upscale/colour.hpp"

namespace upframe {

namespace {

class NeuralWorker : public UpscaleWorker {
 public:
  NeuralWorker(std::unique_ptr<nn::Executor> executor, int tile, int overlap, int scale)
      : executor_(std::move(executor)), tile_(tile), overlap_(overlap), scale_(scale) {}

  Frame upscale(const Frame& input) override {
    try {
      const nn::Tensor rgb = colour::frame_to_rgb(input);
      nn::Tensor result = nn::run_tiled(*executor_, rgb, tile_, overlap_, scale_);
      for (float& v : result.data) v = colour::clamp01(v);
      return colour::rgb_to_frame(result, input);
    } catch (const Error& e) {
      if (!e.stage().empty()) throw;
      throw Error(e.file(), e.problem(), e.code(), "upscale", e.frame_index());
    }
  }

 private:
  std::unique_ptr<nn::Executor> executor_;
  int tile_;
  int overlap_;
  int scale_;
};

}  // namespace

NeuralUpscaler::NeuralUpscaler(std::shared_ptr<const nn::Model> model, nn::Precision precision,
                               int tile, int threads)
    : model_(std::move(model)), precision_(precision) {
  const nn::ModelInfo& info = model_->info();
  if (info.input_channels != 3 || info.output_channels != 3)
    throw Error(info.name + ".param", "the model takes " + std::to_string(info.input_channels) +
                                          " and gives " + std::to_string(info.output_channels) +
                                          " channels; an RGB upscaler needs 3 and 3");
  overlap_ = info.receptive_radius;
  bytes_per_pixel_ = nn::model_bytes_per_input_pixel(*model_);
  tile_ = tile < 0 ? nn::auto_tile_size(*model_, nn::default_cpu_tile_budget_bytes()) : tile;
  total_threads_ = threads > 0 ? threads : int(std::max(1u, std::thread::hardware_concurrency()));
  threads_per_worker_ = total_threads_;
}

std::string NeuralUpscaler::name() const { return model_->info().name; }
int NeuralUpscaler::scale() const { return model_->info().scale; }
std::string NeuralUpscaler::precision() const { return nn::precision_name(precision_); }

size_t NeuralUpscaler::worker_memory_bytes(int width, int height) const {
  const size_t scale = model_->info().scale;
  size_t window_w = width, window_h = height;
  if (tile_ > 0) {
    window_w = std::min<size_t>(width, tile_ + 2 * overlap_);
    window_h = std::min<size_t>(height, tile_ + 2 * overlap_);
  }
  const size_t pixels = size_t(width) * height;
  const size_t activations = bytes_per_pixel_ * window_w * window_h;
  const size_t tensors = pixels * 3 * sizeof(float) * (1 + scale * scale);  // RGB in and out
  const size_t frames = pixels * scale * scale * 8;                         // output frame
  return activations + tensors + frames;
}

void NeuralUpscaler::prepare(int workers) {
  threads_per_worker_ = std::max(1, total_threads_ / std::max(1, workers));
}

std::unique_ptr<UpscaleWorker> NeuralUpscaler::create_worker() {
  return std::make_unique<NeuralWorker>(
      nn::make_cpu_executor(model_, precision_, threads_per_worker_), tile_, overlap_,
      model_->info().scale);
}

}  // namespace upframe
