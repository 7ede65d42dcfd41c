// Disk pre-flight: output size estimate and free-space check (see preflight.hpp).
#include "upframe/pipeline/preflight.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "upframe/error.hpp"

namespace upframe {

namespace fs = std::filesystem;

namespace {

uint64_t to_bytes(double bytes) {
  if (!(bytes > 0)) return 0;  // also NaN
  if (bytes >= 1.8e19) return std::numeric_limits<uint64_t>::max();
  return uint64_t(std::ceil(bytes));
}

uint64_t saturating_add(uint64_t a, uint64_t b) {
  return a > std::numeric_limits<uint64_t>::max() - b ? std::numeric_limits<uint64_t>::max()
                                                      : a + b;
}

double frame_rate(const VideoInfo& info) {
  return info.avg_frame_rate.num > 0 && info.avg_frame_rate.den > 0 ? av_q2d(info.avg_frame_rate)
                                                                    : 0.0;
}

// Frames the output will hold: the container's count, else duration x rate (0: unknown).
double frame_count(const VideoInfo& info) {
  if (info.is_image) return 1;
  if (info.frame_count > 0) return double(info.frame_count);
  return std::max(0.0, info.duration_seconds * frame_rate(info));
}

double duration_seconds(const VideoInfo& info) {
  if (info.duration_seconds > 0) return info.duration_seconds;
  double rate = frame_rate(info);
  return info.frame_count > 0 && rate > 0 ? info.frame_count / rate : 0.0;
}

}  // namespace

double image_size_factor(const std::string& format) {
  if (format == "png") return 0.5;  // docs/INTERFACE.md
  if (format == "jpg" || format == "jpeg") return 0.15;
  if (format == "webp") return 0.1;
  return 1.0;
}

OutputEstimate estimate_output(const VideoInfo& info, uint64_t input_file_bytes, int scale,
                               OutputKind kind, const std::string& format,
                               const std::string& encoder) {
  OutputEstimate e;
  if (kind == OutputKind::kNull) {
    e.known = true;
    return e;
  }
  const double scale2 = double(scale) * scale;
  const double out_pixels = double(info.width) * info.height * scale2;  // a frame
  const double frames = frame_count(info);

  if (kind == OutputKind::kAnimation) {
    if (frames <= 0 || out_pixels <= 0) return e;
    const double factor = format == "apng" ? 0.5 : format == "webp" ? 0.1 : 0.25;
    e.output_bytes = to_bytes(out_pixels * 3 * frames * factor);
    // A GIF spools its frames raw (bgra) for the palette's second pass.
    e.peak_bytes =
        saturating_add(e.output_bytes, format == "gif" ? to_bytes(out_pixels * 4 * frames) : 0);
    e.known = true;
    return e;
  }
  if (kind == OutputKind::kImage || kind == OutputKind::kFramesFolder) {
    double n = kind == OutputKind::kImage ? 1.0 : frames;
    if (n <= 0 || out_pixels <= 0) return e;
    e.output_bytes = e.peak_bytes = to_bytes(out_pixels * 3 * n * image_size_factor(format));
    e.known = true;
    return e;
  }

  // Video: the input's video bytes (bitrate x duration), times scale², capped.
  const double duration = duration_seconds(info);
  double video_in = double(input_file_bytes);
  if (info.bit_rate > 0 && duration > 0)
    video_in = std::min(video_in, info.bit_rate / 8.0 * duration);
  if (video_in <= 0) return e;
  const double copied = double(input_file_bytes) - video_in;  // audio, subtitles, attachments
  double video_out = video_in * scale2;
  if (encoder == "ffv1") {
    // Lossless: about half the raw 4:2:0 size (1.5 samples a pixel, 2 bytes above 8 bits).
    double bytes_per_sample = info.bit_depth > 8 ? 2.0 : 1.0;
    if (frames > 0) video_out = out_pixels * 1.5 * bytes_per_sample * frames * 0.5;
  } else if (frames > 0 && out_pixels > 0) {
    video_out = std::min(video_out, out_pixels * frames * kMaxLossyBitsPerPixel / 8);
  }
  e.output_bytes = saturating_add(to_bytes(video_out), to_bytes(copied));
  e.peak_bytes = saturating_add(e.output_bytes, to_bytes(video_out));
  e.known = true;
  return e;
}

uint64_t estimate_output_bytes(const VideoInfo& info, uint64_t input_file_bytes, int scale,
                               OutputKind kind, const std::string& format,
                               const std::string& encoder) {
  return estimate_output(info, input_file_bytes, scale, kind, format, encoder).peak_bytes;
}

std::string format_bytes(uint64_t bytes) {
  char text[64];
  if (bytes >= 1000ull * 1000 * 1000)
    std::snprintf(text, sizeof text, "%.1f GB", bytes / 1e9);
  else if (bytes >= 1000ull * 1000)
    std::snprintf(text, sizeof text, "%.1f MB", bytes / 1e6);
  else if (bytes >= 1000)
    std::snprintf(text, sizeof text, "%.1f KB", bytes / 1e3);
  else
    std::snprintf(text, sizeof text, "%llu bytes", static_cast<unsigned long long>(bytes));
  return text;
}

void check_disk_space(const fs::path& output, uint64_t bytes, uint64_t available_bytes) {
  if (bytes <= available_bytes) return;
  throw Error(output.string(), "not enough disk space: needs about " + format_bytes(bytes) + ", " +
                                   format_bytes(available_bytes) +
                                   " free (--no-space-check to try anyway)");
}

void check_disk_space(const fs::path& output, uint64_t bytes) {
  if (bytes == 0) return;
  // The output itself may not exist yet (a file, or a frames folder to create): measure the
  // nearest folder that does.
  std::error_code ec;
  fs::path folder = fs::absolute(output, ec);
  if (ec) folder = output;
  while (!fs::is_directory(folder, ec) && folder.has_relative_path()) folder = folder.parent_path();
  fs::space_info space = fs::space(folder, ec);
  if (ec || space.available == static_cast<uintmax_t>(-1)) {
    spdlog::warn("{}: cannot read the free disk space ({}), skipping the space check",
                 folder.string(), ec ? ec.message() : "unknown");
    return;
  }
  spdlog::debug("disk pre-flight: {} needs about {}, {} free", output.string(), format_bytes(bytes),
                format_bytes(space.available));
  check_disk_space(output, bytes, uint64_t(space.available));
}

}  // namespace upframe
