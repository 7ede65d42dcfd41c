// Animated WebP input through libwebp's demuxer: FFmpeg 5.1's webp decoder reads still images
// only (it rejects the ANIM/ANMF chunks), so VideoDecoder hands such files to this reader.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "upframe/frame.hpp"

namespace upframe::media {

// Whether `path` is a WebP file whose VP8X header says "animation" (reads 32 bytes).
bool is_animated_webp(const std::filesystem::path& path);

// Whether `path` is a PNG with an acTL chunk before its image data (an APNG).
bool is_apng(const std::filesystem::path& path);

// Frames of an animated WebP, composited on the canvas as a player shows them, as rgba with
// pts and pkt_duration in milliseconds (WebP's own time unit).
class WebpAnimationReader {
 public:
  // Reads the file; throws upframe::Error (stage "decode") naming it when it is not a valid
  // animated WebP.
  explicit WebpAnimationReader(const std::filesystem::path& path);
  ~WebpAnimationReader();
  WebpAnimationReader(const WebpAnimationReader&) = delete;
  WebpAnimationReader& operator=(const WebpAnimationReader&) = delete;

  int width() const;
  int height() const;
  int64_t frame_count() const;
  int64_t duration_ms() const;  // sum of the frames' durations
  bool variable_durations() const;
  // The next frame (rgba, pts/pkt_duration in ms), nullopt after the last one.
  std::optional<Frame> next();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace upframe::media
