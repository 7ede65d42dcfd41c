// The upscale stage's narrow interface. An Upscaler is shared, read-only state (a model's
// weights, a scaling method); each pipeline worker creates its own UpscaleWorker (its own
// buffers, and on CUDA its own stream) and calls it from one thread at a time.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "upframe/frame.hpp"
#include "upframe/tile_mask.hpp"

namespace upframe {

class UpscaleWorker {
 public:
  virtual ~UpscaleWorker() = default;
  // Upscales one frame; the result has the input's pixel format and colour properties and
  // is width*scale x height*scale. Throws upframe::Error.
  virtual Frame upscale(const Frame& input) = 0;
  // As upscale(), but the result's pixels may still be in flight (the CUDA device path returns
  // once the download of the finished frame is queued, so the next frame's work overlaps it):
  // call wait_ready() on the result before reading its pixels. Default: upscale().
  virtual Frame upscale_started(const Frame& input) { return upscale(input); }
  // Several frames at once (a backend that batches overrides this).
  virtual std::vector<Frame> upscale_batch(std::span<const Frame> inputs);
  // Tile reuse (upframe/tile_mask.hpp): the network runs only on the tiles `mask` marks
  // changed, each with the context that makes its pixels those of upscale() (the other tiles'
  // pixels are left unspecified: the caller copies them from the previous unique frame's
  // result). A finished host frame, writable. Default: upscale().
  virtual Frame upscale_tiles(const Frame& input, const TileMask& mask);
};

class Upscaler {
 public:
  virtual ~Upscaler() = default;
  virtual std::string name() const = 0;  // "lanczos", "realesr-animevideov3-x2", ...
  virtual int scale() const = 0;
  // "cpu" or "cuda".
  virtual std::string backend() const { return "cpu"; }
  virtual std::string precision() const { return "fp32"; }
  // Tile side in input pixels (0: no tiling).
  virtual int tile() const { return 0; }
  // How far (input pixels) an output pixel looks into the input: what tile reuse compares
  // around each tile. -1: tile reuse does not apply (not a network, or one whose output depends
  // on the whole frame).
  virtual int receptive_radius() const { return -1; }
  // The worker count that measures fastest on this machine when the user says `auto`.
  virtual int preferred_workers() const = 0;
  // Upper bound on concurrent workers (memory); >= 1.
  virtual int max_workers() const { return 64; }
  // Estimated bytes one worker needs for a width x height input (for the memory manager).
  virtual size_t worker_memory_bytes(int width, int height) const = 0;
  // Called once before create_worker(), with the worker count the pipeline will use, so a
  // backend can split its threads among workers.
  virtual void prepare(int workers) { (void)workers; }
  virtual std::unique_ptr<UpscaleWorker> create_worker() = 0;
};

// Classic resamplers through libswscale ("lanczos", "bicubic"), working on the decoded
// pixel format directly (no RGB round trip).
std::unique_ptr<Upscaler> make_swscale_upscaler(const std::string& method, int scale);

}  // namespace upframe
