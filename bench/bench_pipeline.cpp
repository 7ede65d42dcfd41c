// Pipeline benchmarks of issue 2, measured side by side in one run (see docs/BENCHMARKS.md):
//  (2) the same 1000-frame 1280x720 clip with 0%, 40% and 70% duplicates, lanczos x2:
//      upscale-stage time and wall time, as ratios to the 0% run;
//  (3) stage overlap in pipeline mode: the busiest stage's busy fraction of the wall time;
//  (4) peak memory (max RSS of the upframe process) of a clip and of one 10x longer.
//  (5) with --neural: the shipped network on samples/sample.mp4, duplicates skipped vs not.
// Usage: bench_pipeline [--frames N] [--width W --height H] [--skip-memory] [--neural |
// --only-neural]
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include <libavutil/imgutils.h>
}

#include "support/synth.hpp"
#include "support/test_support.hpp"
#include "upframe/pipeline/job.hpp"

namespace fs = std::filesystem;
using namespace upframe;
namespace synth = upframe::test::synth;

namespace {

// Frame i shows picture p(i) (a pan of a textured scene, 3 px a picture); a frame marked in
// `repeats` shows the previous frame's picture again.
void make_clip(const fs::path& path, int width, int height, const std::vector<bool>& repeats) {
  Frame scene = synth::render_frame(width * 2, height, AV_PIX_FMT_YUV420P,
                                    [](int x, int y) { return synth::scene_luma(11, x, y); });
  std::vector<int> picture(repeats.size());
  for (size_t i = 0; i < repeats.size(); ++i)
    picture[i] = i == 0 ? 0 : picture[i - 1] + (repeats[i] ? 0 : 1);
  synth::EncodeOptions options;
  options.codec = "libx264";
  options.crf = 20;
  options.gop = 48;
  options.preset = "ultrafast";
  synth::encode_clip(
      path, int(repeats.size()),
      [&](int index) {
        Frame f = Frame::allocate(width, height, AV_PIX_FMT_YUV420P);
        int offset = (picture[index] * 3) % width;
        for (int plane = 0; plane < 3; ++plane) {
          int shift = plane == 0 ? 0 : 1;
          int off = offset >> shift, rows = height >> shift, cols = width >> shift;
          for (int y = 0; y < rows; ++y)
            std::memcpy(f.av()->data[plane] + y * f.av()->linesize[plane],
                        scene.av()->data[plane] + y * scene.av()->linesize[plane] + off, cols);
        }
        return f;
      },
      options);
}

JobStats upscale(const fs::path& in, const fs::path& out, bool parallel,
                 const std::string& model = "lanczos", bool skip_duplicates = true) {
  Settings s;
  s.input = in;
  s.output = out;
  s.overwrite = true;
  s.model = model;
  s.skip_duplicates = skip_duplicates;
  s.scale = 2;
  s.encoder = "libx264";
  s.crf = 23;
  s.parallel = parallel;
  return run_job(s);
}

// Max RSS in KiB of the upframe program run on `in`.
long peak_rss_kib(const fs::path& in, const fs::path& out) {
  pid_t pid = fork();
  if (pid == 0) {
    execl(test::cli_path().c_str(), "upframe", in.c_str(), "--model", "lanczos", "-y", "--quiet",
          "-o", out.c_str(), (char*)nullptr);
    _exit(127);
  }
  int status = 0;
  struct rusage usage {};
  wait4(pid, &status, 0, &usage);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    std::fprintf(stderr, "bench_pipeline: upframe failed on %s\n", in.c_str());
  return usage.ru_maxrss;
}

}  // namespace

int main(int argc, char** argv) {
  int frames = 1000, width = 1280, height = 720;
  bool memory = true, neural = false, only_neural = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--frames" && i + 1 < argc)
      frames = std::stoi(argv[++i]);
    else if (a == "--width" && i + 1 < argc)
      width = std::stoi(argv[++i]);
    else if (a == "--height" && i + 1 < argc)
      height = std::stoi(argv[++i]);
    else if (a == "--skip-memory")
      memory = false;
    else if (a == "--neural")
      neural = true;
    else if (a == "--only-neural")
      neural = true, only_neural = true;
  }
  fs::path dir = test::scratch_dir("bench-pipeline");
  std::printf(
      "bench_pipeline: %d frames %dx%d, lanczos x2, null output (-o /dev/null), %ld cores\n",
      frames, width, height, sysconf(_SC_NPROCESSORS_ONLN));

  // (2) and (3).
  const double fractions[] = {0.0, 0.4, 0.7};
  JobStats base, seq_base;
  std::printf(
      "\n| duplicates | mode | unique | upscale_time s | ratio | wall s | ratio | busiest stage "
      "busy / wall |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (double fraction : fractions) {
    if (only_neural) break;
    fs::path clip = dir / ("clip" + std::to_string(int(fraction * 100)) + ".mp4");
    make_clip(clip, width, height, synth::duplicate_pattern(frames, fraction));
    // Null output, so the encoder's CPU time does not hide the upscale stage's share.
    JobStats s = upscale(clip, "/dev/null", true);
    if (fraction == 0.0) base = s;
    double busiest = std::max({s.extraction_time, s.detection_time, s.upscale_time, s.save_time});
    std::printf("| %.0f%% | %s | %lld | %.2f | %.2f | %.2f | %.2f | %.2f |\n", fraction * 100,
                s.mode.c_str(), (long long)s.unique_frames, s.upscale_time,
                s.upscale_time / base.upscale_time, s.total_time, s.total_time / base.total_time,
                busiest / s.total_time);
    std::printf(
        "|   stages: decode %.2f detect %.2f upscale %.2f (sum over %d workers %.2f) save %.2f |\n",
        s.extraction_time, s.detection_time, s.upscale_time, s.workers, s.upscale_busy_time,
        s.save_time);
    // Sequential mode on the same clip: one thread runs the stages in turn, so the upscale
    // stage's time is not stretched by the decode and detect threads sharing the cores.
    JobStats q = upscale(clip, "/dev/null", false);
    if (fraction == 0.0) seq_base = q;
    std::printf("| %.0f%% | %s | %lld | %.2f | %.2f | %.2f | %.2f | - |\n", fraction * 100,
                q.mode.c_str(), (long long)q.unique_frames, q.upscale_time,
                q.upscale_time / seq_base.upscale_time, q.total_time,
                q.total_time / seq_base.total_time);
    std::fflush(stdout);
    if (fraction == 0.0) {
      // The same clip with a real encoder: overlap when the save stage is the busiest.
      // 200 frames of it: a 1440p libx264 encode of all 1000 would dominate the run.
      fs::path short_clip = dir / "clip0_200.mp4";
      make_clip(short_clip, width, height, synth::duplicate_pattern(std::min(frames, 200), 0.0));
      JobStats e = upscale(short_clip, dir / "out.mp4", true);
      double busiest_e =
          std::max({e.extraction_time, e.detection_time, e.upscale_time, e.save_time});
      std::printf("| 0%%, 200 frames, libx264 output | %s | %lld | %.2f | - | %.2f | - | %.2f |\n",
                  e.mode.c_str(), (long long)e.unique_frames, e.upscale_time, e.total_time,
                  busiest_e / e.total_time);
      std::printf("|   stages: decode %.2f detect %.2f upscale %.2f save %.2f |\n",
                  e.extraction_time, e.detection_time, e.upscale_time, e.save_time);
    }
  }

  // (4) peak memory, short clip vs one 10x longer.
  if (memory && !only_neural) {
    const int short_frames = 60, mem_w = 640, mem_h = 360;
    fs::path short_clip = dir / "short.mp4", long_clip = dir / "long.mp4";
    make_clip(short_clip, mem_w, mem_h, synth::duplicate_pattern(short_frames, 0.4));
    make_clip(long_clip, mem_w, mem_h, synth::duplicate_pattern(short_frames * 10, 0.4));
    long short_kib = peak_rss_kib(short_clip, dir / "short_out.mp4");
    long long_kib = peak_rss_kib(long_clip, dir / "long_out.mp4");
    std::printf("\n| clip | frames | peak RSS MiB | ratio |\n|---|---|---|---|\n");
    std::printf("| %dx%d | %d | %.1f | 1.00 |\n", mem_w, mem_h, short_frames, short_kib / 1024.0);
    std::printf("| %dx%d | %d | %.1f | %.3f |\n", mem_w, mem_h, short_frames * 10,
                long_kib / 1024.0, double(long_kib) / short_kib);
  }
  // Issue 3: the shipped network on the sample clip (50% duplicates), duplicates skipped vs
  // every frame upscaled.
  if (neural) {
    fs::path sample = test::source_dir() / "samples" / "sample.mp4";
    // Alternating runs, the fastest of each kept: the machine is shared and noisy.
    JobStats skip, all;
    for (int round = 0; round < 2; ++round) {
      bool skip_first = round % 2 == 0;
      JobStats first = upscale(sample, "/dev/null", true, "realesr-animevideov3", skip_first);
      JobStats second = upscale(sample, "/dev/null", true, "realesr-animevideov3", !skip_first);
      const JobStats& s_run = skip_first ? first : second;
      const JobStats& a_run = skip_first ? second : first;
      if (round == 0 || s_run.upscale_time < skip.upscale_time) skip = s_run;
      if (round == 0 || a_run.upscale_time < all.upscale_time) all = a_run;
    }
    std::printf(
        "\n| sample.mp4, realesr-animevideov3 x2 | unique upscaled | upscale_time s | ratio | wall "
        "s |\n|---|---|---|---|---|\n");
    std::printf("| every frame | %lld | %.2f | 1.00 | %.2f |\n", (long long)all.unique_frames,
                all.upscale_time, all.total_time);
    std::printf("| duplicates skipped | %lld | %.2f | %.3f | %.2f |\n",
                (long long)skip.unique_frames, skip.upscale_time,
                skip.upscale_time / all.upscale_time, skip.total_time);
  }
  if (!std::getenv("UPFRAME_BENCH_KEEP"))
    fs::remove_all(dir);
  else
    std::printf("kept %s\n", dir.c_str());
  return 0;
}
