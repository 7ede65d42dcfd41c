// Tile reuse (issue 18), measured side by side in one run (docs/BENCHMARKS.md, "Tile reuse"):
// the shipped realesr-animevideov3 x2 on three generated x264 clips (every drawing held two
// frames, as animation is): a sprite over a still background, a talking head (a mouth moving
// on a still face), and full motion (a pan: every tile changes). For each, the job with tile
// reuse and without (--no-reuse-tiles): the network's time (the upscale stage's busy time),
// the fraction of the unique frames' tiles computed, and the wall time. Reuse should cost the
// network time in proportion to the tiles computed, and on full motion cost at most 3 % more.
// Runs alternate (with, without, with, without ...) and the fastest of `--repeat` is kept, so
// other load on the machine touches both alike.
// Usage: bench_tile_reuse [--width W --height H] [--drawings N] [--repeat R] [--device cpu|cuda]
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "support/synth.hpp"
#include "support/test_support.hpp"
#include "upframe/dedup/detector.hpp"
#include "upframe/dedup/luma.hpp"
#include "upframe/dedup/tile_changes.hpp"
#include "upframe/log.hpp"
#include "upframe/pipeline/job.hpp"
#include "upframe/upscale/factory.hpp"

namespace fs = std::filesystem;
using namespace upframe;
namespace synth = upframe::test::synth;

namespace {

fs::path encode_held(const fs::path& path, const std::vector<Frame>& drawings) {
  std::vector<Frame> frames;
  for (const Frame& f : drawings) {
    frames.push_back(f.clone());
    frames.push_back(f.clone());
  }
  synth::EncodeOptions options;
  options.crf = 23;
  options.gop = 48;
  synth::encode_clip(path, frames, options);
  return path;
}

// CPU seconds (user + system) this process has used: less disturbed than wall time by other
// load on a shared machine.
double cpu_seconds() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         1e-6 * double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

struct Measured {
  JobStats stats;
  double cpu = 0;
};

Measured upscale(const fs::path& in, bool reuse, const std::string& device) {
  Settings s;
  s.input = in;
  s.output = "/dev/null";
  s.overwrite = true;
  s.model = "realesr-animevideov3";
  s.scale = 2;
  s.device = device;
  s.reuse_tiles = reuse;
  s.quiet = true;
  Measured m;
  const double before = cpu_seconds();
  m.stats = run_job(s);
  m.cpu = cpu_seconds() - before;
  return m;
}

// The share of the unique frames' area the network runs on with reuse (the changed tiles'
// windows, overlaps counted; a whole frame where every tile changed): the detect stage's
// decisions replayed on the decoded clip.
double window_area_fraction(const fs::path& clip, int radius) {
  dedup::DuplicateDetector detector{dedup::DetectorOptions{}};
  dedup::TileReuseOptions options;
  options.halo = radius;
  dedup::TileChangeTracker tracker(options);
  double run = 0, total = 0;
  int64_t index = 0;
  for (const Frame& frame : synth::decode_file(clip)) {
    if (detector.classify(index++, frame).duplicate) continue;
    const TileMask mask = tracker.next(dedup::luma_of(frame));
    const double area = double(mask.width) * mask.height;
    total += area;
    run += mask.all_changed()
               ? area
               : double(window_area(reuse_windows(mask, radius + kReuseExtraMargin, 8)));
  }
  return total > 0 ? run / total : 0;
}

// The fastest run by wall time, and the least CPU time, kept apart.
struct Best {
  JobStats stats;
  double cpu = 0;
  bool any = false;
  void keep(const Measured& m) {
    if (!any || m.stats.total_time < stats.total_time) stats = m.stats;
    if (!any || m.cpu < cpu) cpu = m.cpu;
    any = true;
  }
};

}  // namespace

int main(int argc, char** argv) {
  int width = 480, height = 272, drawings = 16, repeat = 2;
  std::string device = "cpu";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--width" && i + 1 < argc)
      width = std::stoi(argv[++i]);
    else if (a == "--height" && i + 1 < argc)
      height = std::stoi(argv[++i]);
    else if (a == "--drawings" && i + 1 < argc)
      drawings = std::stoi(argv[++i]);
    else if (a == "--repeat" && i + 1 < argc)
      repeat = std::stoi(argv[++i]);
    else if (a == "--device" && i + 1 < argc)
      device = argv[++i];
  }
  set_log_level(LogLevel::kWarning);
  UpscalerOptions model;
  model.model = "realesr-animevideov3";
  model.scale = 2;
  model.device = "cpu";
  const int radius = make_upscaler(model)->receptive_radius();
  const fs::path dir = test::scratch_dir("bench-tile-reuse");
  synth::ClipSpec spec;
  spec.width = width;
  spec.height = height;
  spec.frames = drawings;
  struct Clip {
    const char* name;
    fs::path path;
  };
  const std::vector<Clip> clips = {
      {"sprite", encode_held(dir / "sprite.mp4", synth::moving_object_clip(spec, 24, 8, 80))},
      {"talking head", encode_held(dir / "mouth.mp4", synth::mouth_flap_clip(spec, 1))},
      {"full motion (pan)", encode_held(dir / "pan.mp4", synth::pan_clip(spec, 2))},
  };
  std::printf(
      "bench_tile_reuse: realesr-animevideov3 x2 on %s, %dx%d, %d drawings held 2 frames each "
      "(x264 crf 23), fastest of %d alternating runs, %ld cores\n",
      device.c_str(), width, height, drawings, repeat, sysconf(_SC_NPROCESSORS_ONLN));
  std::printf(
      "| clip | tiles computed | area the network runs on | network s, reuse | network s, no reuse "
      "| network ratio | wall s, reuse | wall s, no reuse | wall ratio | CPU s, reuse | CPU s, no "
      "reuse | CPU ratio |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const Clip& clip : clips) {
    Best with, without;
    for (int r = 0; r < repeat; ++r) {
      with.keep(upscale(clip.path, true, device));
      without.keep(upscale(clip.path, false, device));
    }
    const JobStats& a = with.stats;
    const JobStats& b = without.stats;
    const double tiles = double(a.tiles_computed + a.tiles_reused);
    std::printf(
        "| %s | %.1f %% (%lld of %.0f) | %.1f %% | %.2f | %.2f | %.3f | %.2f | %.2f | %.3f | %.2f "
        "| "
        "%.2f | %.3f |\n",
        clip.name, tiles > 0 ? 100.0 * double(a.tiles_computed) / tiles : 0.0,
        static_cast<long long>(a.tiles_computed), tiles,
        100.0 * window_area_fraction(clip.path, radius), a.upscale_busy_time, b.upscale_busy_time,
        a.upscale_busy_time / b.upscale_busy_time, a.total_time, b.total_time,
        a.total_time / b.total_time, with.cpu, without.cpu, with.cpu / without.cpu);
    std::printf(
        "(%s with reuse: tile compare %.3f s within detection, tile copy %.3f s within "
        "saving, %.2f %% of the wall time; %s mode)\n",
        clip.name, a.tile_compare_time, a.tile_copy_time,
        100.0 * (a.tile_compare_time + a.tile_copy_time) / a.total_time, a.mode.c_str());
  }
  return 0;
}
