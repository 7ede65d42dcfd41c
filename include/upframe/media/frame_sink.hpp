// The save stage writes frames strictly in order into a FrameSink: a video file (encoder +
// muxer, other streams copied) or a folder of numbered images.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "upframe/frame.hpp"
#include "upframe/media/video_info.hpp"

namespace upframe {

class FrameSink {
 public:
  virtual ~FrameSink() = default;
  // Frame `index` (0-based, output order) is new content. `pts` is in the input's time
  // base (VideoInfo::time_base); the sink keeps timestamps frame for frame.
  virtual void write_unique(int64_t index, const Frame& frame, int64_t pts) = 0;
  // Frame `index` repeats the already written frame `source_index` whose upscaled pixels
  // are `frame`. A frames folder copies the file; a video encodes `frame` again.
  virtual void write_duplicate(int64_t index, int64_t source_index, const Frame& frame,
                               int64_t pts) = 0;
  // Flushes, finalises and moves the result from its temporary name to the final path.
  virtual void finish() = 0;
  // Removes everything written so far (the final path is never touched).
  virtual void abort() noexcept = 0;
  // Human-readable notes: streams dropped and why, encoder chosen, ...
  virtual std::vector<std::string> notes() const { return {}; }
};

struct VideoSinkOptions {
  std::string encoder = "auto";  // auto, libx264, libx265, libsvtav1, ffv1
  int crf = 18;
  int threads = 0;
  bool copy_other_streams = true;  // audio, subtitles, attachments, data
  bool overwrite = false;
};

// Encodes to `output` (container from the extension), built as `.NAME.upframe-tmp.EXT`
// beside it and renamed by finish(). Throws UsageError for an unknown/unavailable encoder or
// one the container cannot hold, Error for an existing output without overwrite or an
// unwritable folder. Streams that cannot be copied are listed in notes() as
// "stream #N (codec) dropped: reason" (SubRip into mp4 is dropped, not converted). Frames come in
// `in.pixel_format` at `width` x `height`; colour metadata and time base come from `in`; other
// streams are copied from `in.path` where the container allows.
std::unique_ptr<FrameSink> make_video_sink(const std::filesystem::path& output, const VideoInfo& in,
                                           int width, int height, const VideoSinkOptions& options);

struct FramesFolderOptions {
  std::string format = "png";  // png, jpg, webp
  int quality = 95;            // 1..100 for jpg/webp
  bool overwrite = false;      // -y: empties old numbered frames first
};

// Writes 00000001.png upward and timestamps.csv into `folder`. The CSV's `index` is the
// file's number (1 for 00000001.png), pts_seconds its time. Built as `.NAME.upframe-tmp`
// beside `folder`; a non-empty existing folder is an error unless overwrite, which removes
// its old numbered frames (other files stay) at finish(). png keeps >8-bit sources as
// rgb48be; jpg maps quality to mjpeg's qscale 31..2; webp uses libwebp's quality.
std::unique_ptr<FrameSink> make_frames_folder_sink(const std::filesystem::path& folder,
                                                   const VideoInfo& in,
                                                   const FramesFolderOptions& options);

// Counts frames and writes nothing: `-o /dev/null`, for benchmarks that must not measure an
// encoder (SPEC section 8, "null sink").
std::unique_ptr<FrameSink> make_null_sink();

// Which encoder `auto` picks for a source of this bit depth (SPEC section 8, CPU side).
// Throws upframe::UsageError for an unknown encoder or one this FFmpeg lacks.
std::string resolve_encoder(const std::string& requested, int bit_depth);

// Whether the container that `output`'s extension picks can hold `encoder`'s codec (false
// for libsvtav1 into .avi, ...): batch mode then falls back to .mkv.
bool container_accepts_encoder(const std::filesystem::path& output, const std::string& encoder);

}  // namespace upframe
