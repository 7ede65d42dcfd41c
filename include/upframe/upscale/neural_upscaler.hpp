// The neural upscaler: an ncnn model run by an executor per worker, with the frame converted
// to planar float RGB and back by the reference colour conversion (upscale/colour.hpp).
#pragma once

#include <memory>

#include "upframe/nn/model.hpp"
#include "upframe/upscale/upscaler.hpp"

namespace upframe {

class NeuralUpscaler : public Upscaler {
 public:
  // `tile`: -1 auto (nn::auto_tile_size with the CPU budget), 0 none, N input pixels.
  // `threads`: 0 = all cores, shared among the workers by prepare(). The model's input and
  // output must be 3-channel RGB; throws upframe::Error naming the model file otherwise.
  NeuralUpscaler(std::shared_ptr<const nn::Model> model, nn::Precision precision, int tile = -1,
                 int threads = 0);

  std::string name() const override;
  int scale() const override;
  std::string precision() const override;
  int tile() const override { return tile_; }
  // One worker using every core inside the convolutions measures fastest on the CPU.
  int preferred_workers() const override { return 1; }
  size_t worker_memory_bytes(int width, int height) const override;
  void prepare(int workers) override;
  std::unique_ptr<UpscaleWorker> create_worker() override;

  int threads_per_worker() const { return threads_per_worker_; }
  int overlap() const { return overlap_; }

 private:
  std::shared_ptr<const nn::Model> model_;
  nn::Precision precision_;
  int tile_;
  int overlap_;
  int total_threads_;
  int threads_per_worker_;
  size_t bytes_per_pixel_;
};

}  // namespace upframe
