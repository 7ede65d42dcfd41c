// Batch processing (seed: batch_processor): every image and video in a folder, names and
// sub-folders kept, each video with its own mode selection, going on past a bad file.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "upframe/config.hpp"
#include "upframe/pipeline/job.hpp"
#include "upframe/pipeline/stats.hpp"

namespace upframe {

struct BatchFileResult {
  std::filesystem::path input;
  std::filesystem::path output;
  bool ok = false;
  bool skipped = false;  // --resume found its output complete
  std::string error;  // when !ok
  JobStats stats;     // when ok
};

struct BatchResult {
  std::vector<BatchFileResult> files;
  double total_time = 0;
  int failed() const;
  // {"files": [{"input", "output", "status", "error", "stats"}], "totals": {...}}
  nlohmann::json to_json() const;
};

// One file of a batch: where it goes.
struct BatchItem {
  std::filesystem::path input;
  std::filesystem::path output;
};

// The files of the folder `settings.input` (sub-folders with settings.recursive) and their
// outputs under settings.output (default: FOLDER_x{scale}/). A folder output inside the input
// folder is skipped while scanning. Two inputs that would write the same output are a
// UsageError, reported before any work starts.
std::vector<BatchItem> plan_batch(const Settings& settings, int scale);

// Runs every file; never throws for a failed file (it is reported in the result), only for
// usage errors found before any work and for an interruption. Writes settings.stats whenever
// it finishes.
BatchResult run_batch(const Settings& settings, const ProgressCallback& progress = {},
                      const StopFlag* stop = nullptr);

bool is_video_path(const std::filesystem::path& path);

}  // namespace upframe
