// Colour conversion at the neural network's boundary: a decoded frame (any planar, semi-planar
// or packed YUV/RGB/gray format up to 16 bits) to planar float RGB in [0,1], and back.
//
// This is THE reference: the CPU path calls frame_to_rgb()/rgb_to_frame(), and the per-pixel
// math lives below in constexpr functions so a CUDA kernel can use (and be tested against) the
// very same formulas.
//
// Decisions (the same ones FFmpeg/mpv make where there is a convention):
// - Matrix: the frame's colorspace (bt601 = bt470bg/smpte170m, bt709, bt2020nc, smpte240m, fcc;
//   bt2020c is converted with the bt2020nc matrix). Unspecified: bt601 below 720 lines, bt709
//   from 720 lines up. YCgCo and ICtCp are rejected.
// - Range: YUV is limited unless the frame says full (or the format is a yuvj one); gray is
//   full unless the frame says limited; RGB is always full.
// - Limited range at N bits: black 16<<(N-8), white 235<<(N-8), chroma 128<<(N-8) +- 112<<(N-8).
//   Full range: code / (2^N - 1), chroma centred on 2^(N-1).
// - Chroma upsampling is BILINEAR, honouring the frame's chroma siting (unspecified: "left",
//   i.e. co-sited horizontally and centred vertically, the MPEG-2/H.264 default; yuvj formats:
//   "center"). Chroma downsampling is the transpose of that (a tent filter around each chroma
//   sample's position), so a flat colour survives the round trip exactly.
// - Input RGB is clamped to [0,1] (limited-range super-white/black is cut), output codes are
//   rounded to nearest and clamped to the format's code range.
// - Alpha is not part of the tensor: rgb_to_frame() upscales the source frame's alpha plane
//   with swscale's bicubic filter to the new size (opaque if the source has none).
// - A frame was written with the matrix used: an unspecified colorspace/range is replaced by
//   the one resolved, so a player does not re-guess bt709 for an SD frame upscaled past 720p.
#pragma once

#include "upframe/frame.hpp"
#include "upframe/nn/tensor.hpp"
#include "upframe/upscale/colour_math.hpp"

namespace upframe::colour {

// Resolves matrix, range and chroma siting of `frame` as described at the top. Throws
// upframe::Error for a matrix it cannot convert (YCgCo, ICtCp, ...).
ColourParams colour_params(const AVFrame* frame);

// Records the resolved matrix and range in `frame` (a YUV or gray one) where they were
// unspecified.
void tag_resolved_colour(AVFrame* frame, const ColourParams& params);

// True for the pixel formats frame_to_rgb/rgb_to_frame read and write directly (host memory,
// integer components up to 16 bits, no palette or bitstream packing).
bool is_supported_format(AVPixelFormat format);
// The pixel format rgb_to_frame writes for an input in `format`: the same one where supported,
// rgba for pal8, gray for the 1-bit formats (those are converted on the way in).
AVPixelFormat output_format_for(AVPixelFormat format);

// Frame -> planar float RGB [0,1], 3 x height x width. A device frame is copied to the host
// first. Throws upframe::Error for an unsupported pixel format or matrix.
nn::Tensor frame_to_rgb(const Frame& frame);

// Planar float RGB -> a new frame of the tensor's size in output_format_for(like's format),
// with like's matrix, range, siting, timestamps and side data (av_frame_copy_props), and like's
// alpha plane (if any) upscaled with bicubic swscale to the new size.
Frame rgb_to_frame(const nn::Tensor& rgb, const Frame& like);

}  // namespace upframe::colour
