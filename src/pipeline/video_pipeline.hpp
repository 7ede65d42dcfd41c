// The stages of a video job (docs/INTERFACE.md, "Pipeline and fallbacks") and the two ways of running them: streamed
// (decode, detect, N upscale workers and the ordered save overlap, with bounded queues in
// between) and sequential (one frame through every stage at a time, one worker).
#pragma once

#include <cstdint>
#include <functional>

#include "upframe/dedup/detector.hpp"
#include "upframe/dedup/tile_changes.hpp"
#include "upframe/media/decoder.hpp"
#include "upframe/media/frame_sink.hpp"
#include "upframe/pipeline/job.hpp"
#include "upframe/upscale/upscaler.hpp"

namespace upframe::pipeline {

struct VideoPipelineConfig {
  bool streamed = true;
  int workers = 1;
  int preload_frames = 3;  // unique decoded frames waiting ahead of the upscaler
  bool skip_duplicates = true;
  dedup::DetectorOptions detector;
  // Tile reuse (docs/INTERFACE.md, "Tile reuse"), with skip_duplicates: each unique frame's
  // tiles that did not change since the upscaled pixels held for them keep those pixels; the
  // network runs on the others. Off where the upscaler has no receptive radius (one log line).
  bool reuse_tiles = false;
  int reuse_tile = 64;        // tile side, input pixels
  int64_t frames_total = -1;  // for progress; -1 unknown
  ProgressCallback progress;
  double progress_interval_s = 0.5;
  // Set: asked once per frame, in order, by the detect stage: whether frame `index` starts a
  // segment of the output (resumable video). There the detector forgets everything, so the
  // first frame of every segment is unique and no duplicate names a frame of another segment,
  // and the sink gets start_segment() before the frame.
  std::function<bool(int64_t index)> starts_segment;
  // Resume: frames an earlier run wrote. They are still decoded and detected (so every later
  // decision is the one an uninterrupted run makes) but neither upscaled nor written again:
  // the sink gets keep_written(). Counted in the stats' resumed_frames.
  std::function<bool(int64_t)> already_written;
  // This job's own stop request (a server's cancel), checked with the process-wide one.
  const StopFlag* stop = nullptr;
};

// Runs the stages; fills the frame counts and stage times of `stats`. Throws on the first
// error of any stage (after stopping the others); the caller aborts the sink.
void run_video_pipeline(VideoDecoder& decoder, Upscaler& upscaler, FrameSink& sink,
                        const VideoPipelineConfig& config, JobStats& stats);

// Throws Interrupted (status 128 + signal) when request_stop() or `stop` asked to stop.
void throw_if_stopped(const StopFlag* stop);

}  // namespace upframe::pipeline
