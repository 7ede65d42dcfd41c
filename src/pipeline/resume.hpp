// Interruption and resume (SPEC section 8, "Resume and atomic output"): the partial folder
// `OUTPUT.upframe-partial/` and its manifest, and the segmented video sink that writes into it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "upframe/media/frame_sink.hpp"
#include "upframe/media/video_info.hpp"

namespace upframe::pipeline {

// `OUTPUT.upframe-partial` beside the final output (a folder output without its trailing /).
std::filesystem::path partial_folder(const std::filesystem::path& final_output);

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

  // Opens the partial folder of `final_output` for this job. An existing one is continued with
  // `resume` (a different input or other options are errors naming what differs), removed
  // with `overwrite` (-y), and otherwise an error; without one a fresh folder is made (and
  // `resume` logs that there was nothing to continue).
  PartialRun(const std::filesystem::path& final_output, const nlohmann::json& input,
             const nlohmann::json& options, bool resume, bool overwrite);

  const std::filesystem::path& folder() const { return folder_; }
  bool resumed() const { return resumed_; }
  // Segment k's frame count, for the finished segments.
  const std::map<int64_t, int64_t>& segments() const { return segments_; }
  std::filesystem::path segment_path(int64_t segment) const;
  void record_segment(int64_t segment, int64_t frames);
  // Removes the folder (after success, or after an error that is not an interruption).
  void remove() noexcept;

 private:
  void save();

  std::filesystem::path folder_;
  nlohmann::json manifest_;
  std::map<int64_t, int64_t> segments_;
  bool resumed_ = false;
};

// A finished job's record (SPEC section 8, resume): the input's identity, the options that
// made the output and the output's own identity (size, time and first and last MiB of a file;
// names, sizes and times of a folder's files), kept on the output itself as the extended
// attribute `user.upframe.job`, so nothing else is left beside it. A copy of the output without
// its extended attributes, or a file system without them, simply has no record.
void record_finished_output(const std::filesystem::path& output, const nlohmann::json& input,
                            const nlohmann::json& options) noexcept;
// Empty when `output` is the unchanged result of a finished job with this input and these
// options; otherwise why not ("no record of a finished upframe job", "the input changed", the
// options that differ, "changed since it was written").
std::string finished_output_mismatch(const std::filesystem::path& output,
                                     const nlohmann::json& input, const nlohmann::json& options);

// A video output written as segments of `segment_frames` frames into `run`'s folder (each by
// a fresh encoder), finished segments recorded in the manifest, joined into `output` by
// finish(), which then removes the folder. Frames of finished segments come as keep_written().
std::unique_ptr<FrameSink> make_segmented_video_sink(PartialRun& run,
                                                     const std::filesystem::path& output,
                                                     const VideoInfo& in, int width, int height,
                                                     const VideoSinkOptions& options,
                                                     int64_t segment_frames);

}  // namespace upframe::pipeline
