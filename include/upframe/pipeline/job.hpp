// Running a job: one video or image in, upscaled out, through the streamed pipeline of
// docs/INTERFACE.md, "Pipeline and fallbacks" (or the sequential mode of "Mode selection").
#pragma once

#include <atomic>
#include <filesystem>
#include <functional>

#include "upframe/config.hpp"
#include "upframe/pipeline/stats.hpp"

namespace upframe {

using ProgressCallback = std::function<void(const Progress&)>;

// A stop request for one job (a server cancels one of its jobs and leaves the others): the
// signal number the job stops as, 0 while none. Checked alongside the process-wide request of
// request_stop(), at the same points, with the same effect.
using StopFlag = std::atomic<int>;

// Runs the job described by `settings`; returns its stats (and writes them to
// settings.stats when set). Throws upframe::Error (with its exit code) on failure, after
// removing whatever it wrote; nothing is left at the final output path. A stop (`stop` or
// request_stop()) throws Interrupted and keeps the partial run for --resume.
JobStats run_job(const Settings& settings, const ProgressCallback& progress = {},
                 const StopFlag* stop = nullptr);

// Asks every running job to stop (async-signal-safe): it throws Interrupted with exit status
// 128 + signal at the next frame.
void request_stop(int signal);
void clear_stop_request();
// The signal request_stop() was given, 0 if none.
int stop_requested();

// Where the output of `settings` goes and in what form.
// kNull: `-o /dev/null`, frames are processed and counted but nothing is written.
// kAnimation: an animated GIF, APNG (.apng, or .png from a video or animated input) or WebP.
enum class OutputKind { kVideo, kFramesFolder, kImage, kNull, kAnimation };
struct OutputPlan {
  std::filesystem::path path;
  OutputKind kind = OutputKind::kVideo;
  std::string format;  // image / frames format (png, jpg, webp); animation: gif, apng, webp
};
bool is_image_path(const std::filesystem::path& path);
OutputPlan plan_output(const Settings& settings, int scale);

}  // namespace upframe
