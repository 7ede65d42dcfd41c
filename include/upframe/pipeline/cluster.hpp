// Distributed jobs (docs/SCALE.md): one video, or a folder of them, cut at keyframes into
// segments that any number of machines upscale independently, under a scheduler clusters
// already run (a Slurm job array, a Kubernetes Indexed Job), then joined without
// re-encoding. The plan is a JSON manifest in a job folder every worker can read and write.
// The scripts for Slurm and Kubernetes: upframe/pipeline/cluster_schedulers.hpp.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "upframe/config.hpp"
#include "upframe/pipeline/job.hpp"
#include "upframe/pipeline/stats.hpp"

namespace upframe::cluster {

inline constexpr int kManifestVersion = 1;
inline constexpr const char* kManifestName = "manifest.json";

struct PlanOptions {
  int segments = 0;            // > 0: this many segments per file (fewer if it has fewer keyframes)
  double segment_seconds = 0;  // > 0: segments of about this length
  std::filesystem::path job_folder;  // empty: OUTPUT.upframe-job beside the output
};

// Plans the job `settings` describes (a video file, or a folder of them; the output must be a
// video file, or a folder for a folder input): resolves the settings as the workers will
// ("auto" as decided), cuts every input at keyframes and writes the manifest into the job
// folder (refused if that exists, unless settings.overwrite). Returns the manifest's path.
// Throws UsageError for a bad option or output, Error for an unreadable input.
std::filesystem::path plan_job(const Settings& settings, const PlanOptions& options);

// The segment index a worker runs when none is given: SLURM_ARRAY_TASK_ID (a Slurm job
// array) or JOB_COMPLETION_INDEX (a Kubernetes Indexed Job).
std::optional<int64_t> index_from_environment();

enum class SegmentOutcome {
  kDone,               // upscaled and written by this call
  kAlreadyDone,        // finished earlier: nothing to do
  kTakenByOtherWorker  // another worker holds it (or finished it first): nothing written
};
struct SegmentResult {
  SegmentOutcome outcome = SegmentOutcome::kDone;
  JobStats stats;  // kDone only
};

// Upscales segment `index` of the manifest into the job folder. Idempotent (a finished segment
// is skipped), atomic (built under a name of its own, linked to the segment's name when whole),
// and a second worker on the same index steps aside. Checks the input's identity and the
// settings (as this worker resolves them) against the plan: a difference is a UsageError
// naming it. `progress` gets the segment's progress.
SegmentResult run_segment(const std::filesystem::path& manifest, int64_t index,
                          const ProgressCallback& progress = {});

// Checks every segment (present, its frame count, the settings it was made with) and joins
// each file's segments, without re-encoding, with the other streams of its input. One Error
// naming every missing or bad segment when any is. Returns the job's stats JSON (written to
// `stats_file` when not empty), with how many duplicates the segment starts cost. With
// `wait_seconds` > 0 it first waits up to that long for every segment to be done (Kubernetes
// has no dependency between Jobs).
nlohmann::json join_job(const std::filesystem::path& manifest,
                        const std::filesystem::path& stats_file = {}, double wait_seconds = 0);

// Segments done / running / missing, frames done of the total, the running workers' speed and
// an ETA, as JSON (see docs/SCALE.md).
nlohmann::json job_status(const std::filesystem::path& manifest);

}  // namespace upframe::cluster
