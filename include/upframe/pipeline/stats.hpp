// The stats contract (docs/INTERFACE.md, "Stats") and live progress (docs/INTERFACE.md, "Console").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace upframe {

struct JobStats {
  // Stage busy times in seconds: wall time during which the stage was working (for the
  // upscale stage: at least one worker busy); waiting on a queue is not counted.
  double extraction_time = 0;
  double detection_time = 0;
  double upscale_time = 0;
  double save_time = 0;
  double total_time = 0;
  double upscale_busy_time = 0;  // summed over workers
  int64_t total_frames = 0;      // frames written
  int64_t unique_frames = 0;
  int64_t duplicate_frames = 0;
  // Frames of total_frames an earlier, interrupted run wrote (--resume): decoded and detected
  // again (so unique/duplicate counts stay those of the whole output) but not upscaled or
  // written by this run.
  int64_t resumed_frames = 0;
  int64_t hash_candidates = 0;           // hash matches looked at by the confirmation
  int64_t rejected_by_confirmation = 0;  // hash matches the confirmation found different
  // Input frames the decoder had to conceal errors in, each named in a warning
  // (docs/FIDELITY.md, "Damaged sources").
  int64_t damaged_frames = 0;
  // Tile reuse (docs/INTERFACE.md, "Tile reuse"): whether it ran, the unique frames' tiles
  // whose upscaled pixels came from the previous unique frame or from the network, and the
  // time spent deciding (within detection_time) and copying reused tiles (within save_time).
  bool tile_reuse = false;
  int64_t tiles_reused = 0;
  int64_t tiles_computed = 0;
  double tile_compare_time = 0;
  double tile_copy_time = 0;
  std::string mode;                      // "pipeline" or "sequential"
  std::string mode_reason;
  std::string decode_backend = "cpu";
  std::string upscale_backend = "cpu";
  int workers = 1;
  int tile = 0;
  std::string precision;
  std::string model;
  int scale = 0;
  std::string input;
  std::string output;
  std::string encoder;  // video output only
  std::vector<std::string> notes;
  // --resume found the output already finished by an earlier run with the same input and
  // options: nothing was done (every count is 0).
  bool already_complete = false;

  double duplicate_percentage() const;
  double fps() const;
  nlohmann::json to_json() const;
};

struct Progress {
  int64_t frames_done = 0;
  int64_t frames_total = -1;  // -1: unknown
  int64_t unique = 0;
  int64_t duplicates = 0;
  int64_t damaged = 0;  // damaged input frames so far (JobStats::damaged_frames)
  int64_t tiles_reused = 0;    // JobStats::tiles_reused so far
  int64_t tiles_computed = 0;  // JobStats::tiles_computed so far
  double elapsed_s = 0;
  double fps = 0;
  double eta_s = -1;  // -1: unknown
  // Busy fraction of the elapsed time per stage: decode, detect, upscale, save.
  double stage_busy[4] = {0, 0, 0, 0};
  bool final = false;

  nlohmann::json to_json() const;
};

}  // namespace upframe
