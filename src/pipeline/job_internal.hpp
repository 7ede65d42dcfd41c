// Parts of a video job that a distributed job's segments (src/pipeline/cluster.cpp) run too, so
// a segment is made exactly as one segment of a resumable job is.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>

#include <nlohmann/json.hpp>

#include "upframe/config.hpp"
#include "upframe/dedup/detector.hpp"
#include "upframe/media/video_info.hpp"
#include "upframe/pipeline/job.hpp"
#include "upframe/upscale/upscaler.hpp"

namespace upframe {

// The settings that change a job's output, resolved ("auto" as decided), for the resume
// manifest and a distributed job's plan: a resumed run, or a segment run elsewhere, must make
// the same output as an uninterrupted one. Also the record of a finished job (any output
// kind), with the encoder as asked.
nlohmann::json output_options(const Settings& s, const Upscaler& upscaler, const OutputPlan& plan,
                              const std::string& encoder);

// The detector's options for `settings` on this input. A source without coding noise needs no
// tolerance: a repeat decodes to the same samples, so only an equal luma is a duplicate (a
// faint local change of a few pixels, below every noise-tolerant measure, stays unique).
// Thresholds the user set are kept.
dedup::DetectorOptions detector_options(const Settings& s, const VideoInfo& info);

namespace pipeline {

// The frames start_pts <= pts < end_pts of the input (unset: from the first / to the last).
struct VideoRange {
  std::optional<int64_t> start_pts, end_pts;
  int64_t frames = -1;  // how many the plan expects (mode selection and progress); -1 unknown
};

// The video stages over `range` of settings.input, encoded by a fresh encoder into the segment
// file `segment_file` (upframe's packet file, see make_video_segment_sink): the detector starts
// afresh at the range's first frame, as at every segment start of a resumable job. The file is
// whole or absent, whatever happens (an error or an interruption removes it).
JobStats run_video_range(const Settings& s, Upscaler& upscaler, const OutputPlan& plan,
                         const VideoRange& range, const std::filesystem::path& segment_file,
                         const ProgressCallback& progress);

}  // namespace pipeline
}  // namespace upframe
