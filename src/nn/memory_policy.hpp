// What to do when GPU memory runs out (docs/INTERFACE.md, "Pipeline and fallbacks": smaller tiles or fewer workers before
// giving up), as pure decisions shared by the upscaler (src/upscale, src/pipeline) and the
// device-check kit, which exercises them on the GPU machine with a real CudaExecutor.
#pragma once

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "upframe/log.hpp"
#include "upframe/nn/model.hpp"

namespace upframe::nn {

// Below this many input pixels a side, tiles are not made smaller: the overlap would dominate.
inline constexpr int kMinOomTile = 32;

// The tile to retry with after running out of memory with tiles of `current` pixels (0: the
// whole image) on a width x height image: half the current size, a multiple of 16, at least
// kMinOomTile; 0 when the current tile is already kMinOomTile or less (give up).
// The tile side a run of a width x height image really uses with tiles of `tile` pixels (0: the
// whole image): the image's longer side where the tiles are bigger.
inline int effective_tile(int tile, int width, int height) {
  const int whole = std::max(width, height);
  return tile > 0 ? std::min(tile, whole) : whole;
}

inline int smaller_tile_after_oom(int current, int width, int height) {
  const int now = effective_tile(current, width, height);
  if (now <= kMinOomTile) return 0;
  return std::max(kMinOomTile, now / 2 / 16 * 16);
}

// Creates up to `wanted` workers with `make()`, which throws CudaOutOfMemory where one more
// does not fit: the workers that fit are kept, with one log line saying why there are fewer.
// The first worker's error is rethrown (not even one fits: smaller tiles are the next step).
template <class Make>
auto make_workers_fitting(int wanted, Make&& make) {
  std::vector<decltype(make())> workers;
  for (int i = 0; i < std::max(1, wanted); ++i) {
    try {
      workers.push_back(make());
    } catch (const CudaOutOfMemory& e) {
      if (workers.empty()) throw;
      log_message(LogLevel::kWarning, "GPU memory: worker " + std::to_string(i + 1) + " of " +
                                          std::to_string(wanted) + " does not fit (" + e.problem() +
                                          "); running " + std::to_string(workers.size()));
      break;
    }
  }
  return workers;
}

}  // namespace upframe::nn
