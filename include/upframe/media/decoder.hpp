// Demux + decode of the best video stream of any file FFmpeg reads, multithreaded; animated
// WebP through libwebp (FFmpeg 5.1 reads still WebP only).
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

#include "upframe/frame.hpp"
#include "upframe/media/video_info.hpp"

namespace upframe {

struct DecoderOptions {
  int threads = 0;  // 0: libavcodec decides (all cores)
  // "cpu", "auto" or "cuda": NVDEC through libavcodec's hwaccel where a CUDA device and the
  // codec allow, else CPU decode with one log line saying why (docs/INTERFACE.md, "Pipeline and fallbacks").
  std::string device = "cpu";
  // NVDEC frames stay in device memory (AV_PIX_FMT_CUDA) when true, each copied out of the
  // decoder's surface so that frames held downstream do not hold NVDEC's fixed surfaces; else
  // they are copied to host memory as yuv420p / yuv420p10le, what CPU decode gives. Only for
  // consumers that take device frames (the CUDA duplicate detector and upscaler).
  bool keep_on_device = false;
  // Frames in a pixel format without a plain luma plane (rgb, bgra, pal8 from GIF, APNG or
  // WebP, packed YUV...) are converted once here (swscale) to the nearest format the duplicate
  // detector and upscalers read: yuv444p, yuva444p (alpha kept) or their 10-bit forms, and
  // info().pixel_format says so. Off for still images, which keep their native format.
  bool luma_frames = false;
  // One segment of the stream (a distributed job's unit): the decoder seeks to the keyframe at
  // or before start_pts and returns only the frames with start_pts <= pts < end_pts, in
  // info().time_base; unset: from the first frame / to the last. The check for a truncated
  // stream applies to whole streams only.
  std::optional<int64_t> start_pts;
  std::optional<int64_t> end_pts;
  // A frame the decoder could only conceal errors in (damaged data) fails decoding when
  // true; else it is a warning naming the frame and counted (docs/FIDELITY.md, "Damaged
  // sources").
  bool strict = false;
};

// The pixel format `luma_frames` converts `format` to (itself when it has a plain luma plane).
AVPixelFormat luma_frame_format(AVPixelFormat format);

// The timestamps of the video stream VideoDecoder reads, from its packets (demuxed, not
// decoded): every packet's pts in presentation order and the keyframes' pts, in time_base.
// Cheap next to decoding; what a distributed job's plan cuts at.
struct VideoPacketIndex {
  AVRational time_base{1, 1};
  std::vector<int64_t> pts;           // sorted
  std::vector<int64_t> keyframe_pts;  // sorted
};
// Throws upframe::Error naming the file for an unreadable input or packets without
// timestamps.
VideoPacketIndex index_video_packets(const std::filesystem::path& path);

class VideoDecoder {
 public:
  // Opens and probes; throws upframe::Error naming the file for a missing, unreadable,
  // non-media or video-less input.
  explicit VideoDecoder(const std::filesystem::path& path, const DecoderOptions& options = {});
  ~VideoDecoder();
  VideoDecoder(const VideoDecoder&) = delete;
  VideoDecoder& operator=(const VideoDecoder&) = delete;

  const VideoInfo& info() const;
  // The next decoded frame in presentation order, its pts in info().time_base (best-effort
  // timestamp; never AV_NOPTS_VALUE: missing ones are extrapolated). nullopt at the end.
  // Throws upframe::Error (stage "decode", index of the frame that could not be produced)
  // on damaged or truncated input: AVERROR_INVALIDDATA or an I/O error from the demuxer or
  // decoder; a frame with concealed errors when `strict` (else it is returned, counted in
  // damaged_frames()); at the end, fewer frames than the container lists (less max(2, 2%)), or,
  // where it lists none, frames ending before 90% of the stated duration. An mp4 cut before its
  // moov index fails in the constructor ("damaged or truncated").
  std::optional<Frame> next();
  // Frames returned so far that the decoder had to conceal errors in (each also logged as a
  // warning with its index and time). Safe to read from another thread.
  int64_t damaged_frames() const;
  // "cpu" or "nvdec".
  std::string backend() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace upframe
