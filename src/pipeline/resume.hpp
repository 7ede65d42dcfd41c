// Interruption and resume (docs/ARCHITECTURE.md, "Resume"): the partial folder
// `OUTPUT.upframe-partial/`, its lock and manifest, and the segmented video sink that writes
// into it.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "pipeline/file_lock.hpp"
#include "upframe/error.hpp"
#include "upframe/media/frame_sink.hpp"
#include "upframe/media/video_info.hpp"

namespace upframe::pipeline {

// `OUTPUT.upframe-partial` beside the final output (a folder output without its trailing /).
std::filesystem::path partial_folder(const std::filesystem::path& final_output);

// Test hook for the finalize steps: when the environment variable UPFRAME_TEST_KILL_AT names
// `step`, the process kills itself (SIGKILL) there, as a power cut or `kill -9` would.
void kill_point(const char* step);

// fsync of a file or folder by path (a rename is durable once its folder is synced).
bool sync_path(const std::filesystem::path& path);
// SHA-256 of the options' JSON text.
std::string options_hash(const nlohmann::json& options);
// "hash_threshold was 0, now 3, crf was 18, now 23": the options that differ.
std::string option_differences(const nlohmann::json& before, const nlohmann::json& now);

// What identifies an input without reading it all: size, modification time and a SHA-256 of
// its first and last MiB.
nlohmann::json input_identity(const std::filesystem::path& input);

// The partial folder and its manifest (`manifest.json`): the input's identity, the options
// that change the output (with their hash), and the video segments finished so far. The
// manifest is replaced atomically (temporary name, fsync, rename), only after the segment it
// names is on disk.
class PartialRun {
 public:
  static constexpr const char* kManifestName = "manifest.json";
  // The lock a running job holds on its partial folder (see FileLock), naming the process.
  static constexpr const char* kLockName = "upframe.lock";

  // Opens the partial folder of `final_output` for this job and holds its lock for the
  // object's life. A folder another live process holds is refused (UsageError naming that
  // process), whatever the flags. An existing one is continued with `resume` (a different
  // input or other options are errors naming what differs; segments whose checksum fails are
  // dropped, with a warning naming each, and made again), removed with `overwrite` (-y), and
  // otherwise an error; without one a fresh folder is made (and `resume` logs that there was
  // nothing to continue). A new folder appears whole: built under a temporary name with its
  // lock and manifest, then renamed.
  PartialRun(const std::filesystem::path& final_output, const nlohmann::json& input,
             const nlohmann::json& options, bool resume, bool overwrite);
  ~PartialRun();

  const std::filesystem::path& folder() const { return folder_; }
  bool resumed() const { return resumed_; }
  // The finished segments: first frame -> frame count.
  const std::map<int64_t, int64_t>& segments() const { return segments_; }
  // Frames the finished segments hold.
  int64_t frames_kept() const;
  // The file of the segment that starts at frame `first_frame`.
  std::filesystem::path segment_path(int64_t first_frame) const;
  void record_segment(int64_t first_frame, int64_t frames);
  // Drops a finished segment (damaged): removed from the manifest, its file deleted.
  void forget_segment(int64_t first_frame);
  // Removes the folder (after success, or after an error that is not an interruption). It is
  // first renamed out of the way (`OUTPUT.upframe-partial.done`) in one step, so a kill
  // part-way never leaves a half-deleted partial run under its name.
  void remove() noexcept;

 private:
  void open_existing(const nlohmann::json& input, const nlohmann::json& options, bool resume,
                     bool overwrite);
  bool create(const nlohmann::json& input, const nlohmann::json& options);
  void save(const std::filesystem::path& folder);

  std::filesystem::path folder_;
  std::unique_ptr<FileLock> lock_;
  nlohmann::json manifest_;
  std::map<int64_t, int64_t> segments_;
  bool resumed_ = false;
};

// Removes what the partial run of a finished job left at `output` (the caller has checked
// that `output` is this job's finished result): `OUTPUT.upframe-partial.done` (a kill while it
// was being removed) and a whole `OUTPUT.upframe-partial` (a kill between the output's rename
// and the folder's removal; refused, as PartialRun is, when a live process holds it). Returns
// whether there was anything.
bool remove_finished_leftovers(const std::filesystem::path& output);

// A finished job's record (docs/ARCHITECTURE.md, "Finished jobs"): the input's identity, the
// options that made the output and the output's own identity (size, time and first and last MiB of
// a file; names, sizes and times of a folder's files), kept on the output itself as the extended
// attribute `user.upframe.job`, so nothing else is left beside it. A copy of the output without
// its extended attributes, or a file system without them, simply has no record.
void record_finished_output(const std::filesystem::path& output, const nlohmann::json& input,
                            const nlohmann::json& options) noexcept;
// Empty when `output` is the unchanged result of a finished job with this input and these
// options; otherwise why not ("no record of a finished upframe job", "the input changed", the
// options that differ, "changed since it was written").
std::string finished_output_mismatch(const std::filesystem::path& output,
                                     const nlohmann::json& input, const nlohmann::json& options);

// A finished segment found damaged when the output is joined (its checksum fails): it was
// dropped from the partial run, which stays for --resume to make it again.
class DamagedSegment : public Error {
 public:
  using Error::Error;
};

// Where the segments of a resumable video output start, asked by the detect stage once per
// frame in order: at the segments a resumed run keeps (and where each of them ends), and
// elsewhere after `segment_frames` frames or once a segment has taken `max_seconds` of wall-
// clock time since its first frame (> 0), whichever comes first, so that a kill loses at most
// about that much work. Cuts by time depend on the machine's speed: two runs cut alike, and
// give the same bytes, when the time limit is never reached (or is 0).
class SegmentCuts {
 public:
  SegmentCuts(std::map<int64_t, int64_t> kept, int64_t segment_frames, double max_seconds);
  bool starts_segment(int64_t index);
  // Whether frame `index` is in a kept segment (not upscaled or written again).
  bool kept(int64_t index) const;

 private:
  std::map<int64_t, int64_t> kept_;  // first frame -> frames
  int64_t segment_frames_;
  double max_seconds_;
  int64_t current_ = 0;
  std::chrono::steady_clock::time_point started_;
};

// A video output written as segments into `run`'s folder (each by a fresh encoder, started at
// start_segment() as SegmentCuts says, closed after `segment_frames` frames or at the next
// start), finished segments recorded in the manifest with their first frame, joined into
// `output` by finish(), which then removes the folder. Frames of finished segments come as
// keep_written(). suspend() (an interruption) closes the open segment at the last frame
// written, so what was done is kept; the resumed run starts a segment there.
std::unique_ptr<FrameSink> make_segmented_video_sink(PartialRun& run,
                                                     const std::filesystem::path& output,
                                                     const VideoInfo& in, int width, int height,
                                                     const VideoSinkOptions& options,
                                                     int64_t segment_frames);

}  // namespace upframe::pipeline
