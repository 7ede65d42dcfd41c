// The save stage writes frames strictly in order into a FrameSink: a video file (encoder +
// muxer, other streams copied) or a folder of numbered images.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
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
  // Frame `index` lasts `duration` (input time base) until the next one: called just before it
  // is written. Formats that store per-frame durations (GIF, APNG, WebP) use it for the last
  // frame; the others follow the timestamps alone.
  virtual void set_duration(int64_t /*index*/, int64_t /*duration*/) {}
  // Frame `index` was written by an earlier, interrupted run (resume): it is not written
  // again, only accounted for (a frames folder lists its timestamp).
  virtual void keep_written(int64_t /*index*/, int64_t /*pts*/) {}
  // Frame `index` (written or kept next) starts a new segment of a segmented output.
  virtual void start_segment(int64_t /*index*/) {}
  // Stops after an interruption: what is complete stays for a later --resume, what is half
  // written goes. By default the same as abort().
  virtual void suspend() noexcept { abort(); }
  // Human-readable notes: streams dropped and why, encoder chosen, ...
  virtual std::vector<std::string> notes() const { return {}; }
};

struct VideoSinkOptions {
  // auto, libx264, libx265, libsvtav1, libaom-av1, libvpx-vp9, ffv1, h264_nvenc, hevc_nvenc
  std::string encoder = "auto";
  int crf = 18;
  int threads = 0;
  bool copy_other_streams = true;  // audio, subtitles, attachments, data
  bool overwrite = false;
  // Called with the finished file, synced, under its temporary name just before the rename
  // to the output (a direct or joined video): what must hold of the output from its first
  // instant, such as the finished-job record, goes on it here.
  std::function<void(const std::filesystem::path&)> before_rename;
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
  // Set: build the frames in this folder (the resumable `OUTPUT.upframe-partial/`) instead
  // of a temporary sibling. It is kept by suspend() and may hold frames of an earlier run;
  // each file is written under a temporary name and renamed, so a frame is whole or absent.
  // finish() removes `work_private_files` (the manifest) from it before moving it in place.
  std::filesystem::path work_folder;
  std::vector<std::string> work_private_files;
};

// How many frames a frames folder already holds whole: the longest run 00000001.EXT,
// 00000002.EXT, ... of non-empty files (what a resumed run need not write again).
int64_t count_written_frames(const std::filesystem::path& folder, const std::string& format);

// Writes 00000001.png upward and timestamps.csv into `folder`. The CSV's `index` is the
// file's number (1 for 00000001.png), pts_seconds its time. Built as `.NAME.upframe-tmp`
// beside `folder`; a non-empty existing folder is an error unless overwrite, which removes
// its old numbered frames (other files stay) at finish(). png keeps >8-bit sources as
// rgb48be; jpg maps quality to mjpeg's qscale 31..2; webp uses libwebp's quality.
std::unique_ptr<FrameSink> make_frames_folder_sink(const std::filesystem::path& folder,
                                                   const VideoInfo& in,
                                                   const FramesFolderOptions& options);

// One segment of a resumable video output (docs/ARCHITECTURE.md, "Resume"): its frames
// encoded by a fresh encoder (so it starts with a keyframe and decodes on its own), the
// packets stored with their exact timestamps and the stream's codec parameters in upframe's
// segment file format, with a checksum of the whole file.
// Built under a temporary name, synced to disk and renamed by finish(), so a segment file is
// whole or absent. `container` is the final output (its container decides the encoder's
// global headers); other streams are not copied here but by join_video_segments().
std::unique_ptr<FrameSink> make_video_segment_sink(const std::filesystem::path& segment,
                                                   const std::filesystem::path& container,
                                                   const VideoInfo& in, int width, int height,
                                                   const VideoSinkOptions& options);

// Empty when the segment file at `segment` is whole (its end record present) and its checksum
// matches its content; otherwise the problem ("damaged: checksum mismatch", "cut short", ...).
std::string segment_file_problem(const std::filesystem::path& segment);

// Joins segment files, in order, into `output` without re-encoding (packets remuxed), with
// the other streams of `in.path` copied as make_video_sink() does; written under a temporary
// name and renamed. Throws upframe::Error naming the segment for an unreadable or damaged one
// (checksum mismatch: nothing is renamed into place) or segments that do not fit together. Returns
// the notes (streams dropped, encoder).
std::vector<std::string> join_video_segments(const std::filesystem::path& output,
                                             const std::vector<std::filesystem::path>& segments,
                                             const VideoInfo& in, const VideoSinkOptions& options);

struct AnimationOptions {
  std::string format = "gif";  // gif, apng, webp
  int quality = 95;            // webp: 1..99 lossy, 100 lossless
  bool overwrite = false;
};

// The animation format an output path's extension names: "gif" (.gif), "apng" (.apng, .png),
// "webp" (.webp); empty for any other.
std::string animation_format_of(const std::filesystem::path& output);

// An animated GIF (one palette for the clip: palettegen/paletteuse), APNG or animated WebP at
// `output`, every frame at its input timestamp with its own duration (the last one from
// set_duration), alpha kept (GIF: one bit). Built under a temporary name and renamed by
// finish(); written in one pass, not as resumable segments.
std::unique_ptr<FrameSink> make_animation_sink(const std::filesystem::path& output,
                                               const VideoInfo& in,
                                               const AnimationOptions& options);

// Counts frames and writes nothing: `-o /dev/null`, for benchmarks that must not measure an
// encoder.
std::unique_ptr<FrameSink> make_null_sink();

// Which encoder `auto` picks for a source of this bit depth (docs/GPU.md): h264_nvenc
// (8-bit) or hevc_nvenc main10 (more) where a CUDA device can open an NVENC session, else
// libx264 or libx265 (logging why once when a device is present); for an `output` in WebM,
// libvpx-vp9 (profile 2, yuv420p10le, above 8 bits). Throws upframe::UsageError for an unknown
// encoder or one this FFmpeg lacks.
std::string resolve_encoder(const std::string& requested, int bit_depth,
                            const std::filesystem::path& output = {});

// The problem, for an error line, when `output`'s container cannot hold `encoder`'s codec
// ("the webm container cannot hold h264 video (encoder libx264); use --encoder libvpx-vp9, ...").
std::string container_refusal(const std::filesystem::path& output, const std::string& encoder);

// "alpha channel dropped: ..." when frames of `source` format carry alpha that `encoder`
// cannot store (H.264, H.265, VP9, AV1); empty when there is none or it is kept (ffv1).
std::string alpha_note(AVPixelFormat source, const std::string& encoder);

// Whether `encoder` (h264_nvenc or hevc_nvenc) can be opened here: a CUDA device, the
// encoder in FFmpeg, and a session the card accepts. Probed once per process; never throws for
// an unusable card (the reason says why).
struct NvencStatus {
  bool usable = false;
  bool device_present = false;  // a CUDA device answered (then a fallback is worth a log line)
  std::string reason;
};
NvencStatus nvenc_status(const std::string& encoder);

// Whether the container that `output`'s extension picks can hold `encoder`'s codec (false
// for libsvtav1 into .avi, ...): batch mode then falls back to .mkv.
bool container_accepts_encoder(const std::filesystem::path& output, const std::string& encoder);

}  // namespace upframe
