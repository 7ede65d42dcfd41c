// Tile reuse's copy of the reused tiles between upscaled frames (upframe/tile_mask.hpp).
#pragma once

#include "upframe/frame.hpp"
#include "upframe/tile_mask.hpp"

namespace upframe {

// Copies the reused tiles (mask 0) of `previous` into `frame` (both upscaled frames of one
// size, `scale` x the mask's frame, in one host pixel format; `frame` writable). Planar,
// semi-planar and packed formats; chroma planes at their subsampled size (tile corners land on
// whole chroma samples when tile x scale is even, which reuse ensures).
void copy_reused_tiles(const Frame& previous, Frame& frame, const TileMask& mask, int scale);

}  // namespace upframe
