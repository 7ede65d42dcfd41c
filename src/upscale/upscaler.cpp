#include "upframe/upscale/upscaler.hpp"

namespace upframe {

std::vector<Frame> UpscaleWorker::upscale_batch(std::span<const Frame> inputs) {
  std::vector<Frame> out;
  out.reserve(inputs.size());
  for (const Frame& f : inputs) out.push_back(upscale(f));
  return out;
}

Frame UpscaleWorker::upscale_tiles(const Frame& input, const TileMask& mask) {
  (void)mask;
  return upscale(input);
}

}  // namespace upframe
