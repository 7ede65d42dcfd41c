// The neural upscaler: an ncnn model run by an executor per worker, with the frame converted
// to planar float RGB and back by the reference colour conversion (upscale/colour.hpp).
#pragma once

#include <memory>

#include "upframe/nn/model.hpp"
#include "upframe/upscale/upscaler.hpp"

namespace upframe {

class NeuralUpscaler : public Upscaler {
 public:
  // `tile`: -1 auto (the CPU: nn::auto_tile_size with the CPU budget; CUDA: from free VRAM
  // and the worker count, in prepare()), 0 none, N input pixels.
  // `threads`: 0 = all cores, shared among the workers by prepare() (CPU backend).
  // `cuda`: run the network on CUDA device 0 (the caller checked cuda_device_info()); colour
  // conversion and tiling stay on the host. The model's input and output must be 3-channel
  // RGB; throws upframe::Error naming the model file otherwise.
  NeuralUpscaler(std::shared_ptr<const nn::Model> model, nn::Precision precision, int tile = -1,
                 int threads = 0, bool cuda = false);

  std::string name() const override;
  int scale() const override;
  std::string precision() const override;
  std::string backend() const override { return cuda_ ? "cuda" : "cpu"; }
  int tile() const override { return tile_; }
  // The model's receptive radius; -1 for a model with global context (tile reuse off).
  int receptive_radius() const override;
  // CPU: one worker using every core inside the convolutions measures fastest. CUDA: as many
  // streams (up to kMaxCudaWorkers) as free VRAM holds at the tile size.
  int preferred_workers() const override;
  int max_workers() const override;
  size_t worker_memory_bytes(int width, int height) const override;
  void prepare(int workers) override;
  std::unique_ptr<UpscaleWorker> create_worker() override;

  int threads_per_worker() const { return threads_per_worker_; }
  int overlap() const { return overlap_; }
  static constexpr int kMaxCudaWorkers = 4;

 private:
  // CUDA: how many workers (1 to `cap`) fit the device memory the workers may share, each with
  // tiles of `tile` (0: whole frames of the probe size).
  int cuda_workers_fitting(int tile, int cap) const;
  // The device memory the workers share (a fifth of the free memory left aside).
  size_t cuda_usable_bytes() const;
  // CUDA: a worker's whole-frame buffers for a width x height input besides the network's
  // activations (the device path: RGB in and out, the YUV upload, two YUV output slots).
  size_t cuda_frame_bytes(int width, int height) const;

  std::shared_ptr<const nn::Model> model_;
  nn::Precision precision_;
  int tile_;
  int overlap_;
  int total_threads_;
  int threads_per_worker_;
  size_t bytes_per_pixel_;
  bool cuda_;
  bool auto_tile_;
  size_t cuda_free_bytes_ = 0;
  // Shared by the workers: whether one found fp16 overflow (then all run fp32).
  std::shared_ptr<void> fp16_overflow_;
};

}  // namespace upframe
