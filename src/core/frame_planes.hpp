// Plane-by-plane copies of frames between host and device memory. FFmpeg 5.1's own CUDA copy
// (av_hwframe_transfer_data, hwcontext_cuda.c) copies `height >> log2_chroma_h` chroma rows:
// one short for odd heights (4:2:0 AV1/VP9 sources at 99x57, say), leaving the last chroma row
// unset. These copy every visible byte, chroma rows rounded up.
#pragma once

#include <cstddef>
#include <string>

extern "C" {
#include <libavutil/frame.h>
#include <libavutil/pixfmt.h>
}

namespace upframe {

// The visible part of one plane: bytes a row and rows.
struct PlaneExtent {
  size_t row_bytes = 0;
  int rows = 0;
};

// The planes of a width x height picture in `format` (chroma rows and columns rounded up), in
// `out`; returns how many (0 for an unknown or hardware format). A pure function.
int visible_planes(AVPixelFormat format, int width, int height, PlaneExtent out[4]);

// Copies `device` (AV_PIX_FMT_CUDA on the CUDA runtime's primary context, which upframe hands
// FFmpeg) into a new host frame in its data format, plane by plane; properties not copied.
// False, with the reason in `why`, where it cannot (CUDA not built, another CUDA context): the
// caller then uses FFmpeg's copy. Throws upframe::Error when a copy fails.
bool download_device_frame(const AVFrame* device, AVFrame** host, std::string* why);

}  // namespace upframe
