// Disk pre-flight (docs/INTERFACE.md): before a job starts, estimate what its output needs on
// disk and refuse to start when the output's file system clearly lacks it, rather than fail
// hours later. `--no-space-check` (Settings::no_space_check) skips it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "upframe/media/video_info.hpp"
#include "upframe/pipeline/job.hpp"

namespace upframe {

// Size factors of an upscaled frame written as an image, relative to raw RGB (3 bytes a
// pixel). PNG is the 0.5 of docs/INTERFACE.md, "Build and CI"; jpg and webp (lossy, quality 95 by default) are upper-end
// figures for photographic and animated content (quality 95 jpg is about 2-3.5 bits a pixel
// of 24, webp somewhat less). Unknown formats count as raw.
double image_size_factor(const std::string& format);

// Lossy encoders (x264/x265/NVENC/svtav1 at their CRF) seldom exceed this many bits per
// output pixel; it caps the estimate of a high-bitrate input times scale².
constexpr double kMaxLossyBitsPerPixel = 0.5;

struct OutputEstimate {
  uint64_t output_bytes = 0;  // the finished output (file or frames folder)
  // The most the job has on the output's file system at once: a video is encoded as segments
  // in OUTPUT.upframe-partial/ and then joined into the final file, so at the join its video
  // is on disk twice. Frames are renamed from the partial folder, so they are not.
  uint64_t peak_bytes = 0;
  bool known = false;  // false: nothing to estimate from (no duration, frame count or size)
};

// Estimate for upscaling the input described by `info` (`input_file_bytes` its size on disk)
// by `scale` into an output of `kind`:
//  - kVideo: input video bitrate (info.bit_rate, else file size * 8 / duration) x scale² x
//    duration, capped at kMaxLossyBitsPerPixel a pixel (encoder "ffv1", lossless: raw 4:2:0
//    size x 0.5 instead), plus the streams copied from the input (its other bytes);
//  - kFramesFolder: width x height x scale² x 3 bytes x frames x image_size_factor(format);
//  - kImage: the same for one frame; kNull: nothing.
// Frames: info.frame_count, else duration x frame rate.
OutputEstimate estimate_output(const VideoInfo& info, uint64_t input_file_bytes, int scale,
                               OutputKind kind, const std::string& format,
                               const std::string& encoder = "auto");
// estimate_output(...).peak_bytes: what check_disk_space needs (0 when unknown).
uint64_t estimate_output_bytes(const VideoInfo& info, uint64_t input_file_bytes, int scale,
                               OutputKind kind, const std::string& format,
                               const std::string& encoder = "auto");

// Throws upframe::Error(output, "not enough disk space: needs about X GB, Y GB free") when
// `bytes` exceed the space available (std::filesystem::space) on the file system that will
// hold `output` (its nearest existing folder). If the free space cannot be read, logs why
// and lets the job run.
void check_disk_space(const std::filesystem::path& output, uint64_t bytes);
// The comparison itself, with the free space given (what check_disk_space does once it has
// read it).
void check_disk_space(const std::filesystem::path& output, uint64_t bytes,
                      uint64_t available_bytes);

// "1.5 GB", "340 MB", "12 KB", "512 bytes" (decimal units, as df -H and file managers show).
std::string format_bytes(uint64_t bytes);

}  // namespace upframe
