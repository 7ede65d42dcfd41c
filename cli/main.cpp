// The `upframe` command: flags and config into Settings, then run_job(). No logic a
// library user would need lives here; this file only parses, prints and maps exit codes.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "report_error.hpp"
#include "model_info_command.hpp"
#include "scale_commands.hpp"
#include "serve_command.hpp"
#include "setup.hpp"
#include "upframe/config.hpp"
#include "upframe/error.hpp"
#include "upframe/pipeline/batch.hpp"
#include "upframe/pipeline/job.hpp"

namespace {

using upframe::ExitCode;

class ProgressPrinter {
 public:
  ProgressPrinter(bool json, bool quiet) : json_(json), quiet_(quiet), tty_(isatty(2)) {}
  void operator()(const upframe::Progress& p) {
    if (json_) {
      std::cout << p.to_json().dump() << std::endl;
      return;
    }
    if (quiet_) return;
    // A live line on a terminal; on a pipe or file, a plain line every 5 s.
    if (!tty_ && !p.final && p.elapsed_s - last_plain_ < 5.0) return;
    last_plain_ = p.elapsed_s;
    std::string total = p.frames_total >= 0 ? std::to_string(p.frames_total) : "?";
    std::string eta = p.eta_s >= 0 ? fmt::format("{:.0f}s", p.eta_s) : "?";
    std::string damaged = p.damaged > 0 ? fmt::format(", damaged {}", p.damaged) : "";
    std::string line = fmt::format(
        "frames {}/{} (unique {}, duplicates {}{}) {:.1f} fps, ETA {} | busy: decode {:.0f}% "
        "detect {:.0f}% upscale {:.0f}% save {:.0f}%",
        p.frames_done, total, p.unique, p.duplicates, damaged, p.fps, eta, 100 * p.stage_busy[0],
        100 * p.stage_busy[1], 100 * p.stage_busy[2], 100 * p.stage_busy[3]);
    if (tty_)
      std::fprintf(stderr, "\r\033[K%s%s", line.c_str(), p.final ? "\n" : "");
    else
      std::fprintf(stderr, "upframe: %s\n", line.c_str());
    std::fflush(stderr);
  }

 private:
  bool json_, quiet_, tty_;
  double last_plain_ = -1e9;
};

void print_summary(const upframe::JobStats& s) {
  std::fprintf(stderr,
               "\nupframe: done  %s -> %s\n"
               "  model %s x%d (%s, %s, tile %d), %d worker(s), mode %s (%s)\n"
               "  frames %lld: %lld unique, %lld duplicates (%.1f%%)\n"
               "  time %.2fs (%.2f fps): decode %.2fs, detect %.2fs, upscale %.2fs "
               "(workers busy %.2fs), save %.2fs\n",
               s.input.c_str(), s.output.c_str(), s.model.c_str(), s.scale,
               s.upscale_backend.c_str(), s.precision.c_str(), s.tile, s.workers, s.mode.c_str(),
               s.mode_reason.c_str(), (long long)s.total_frames, (long long)s.unique_frames,
               (long long)s.duplicate_frames, s.duplicate_percentage(), s.total_time, s.fps(),
               s.extraction_time, s.detection_time, s.upscale_time, s.upscale_busy_time,
               s.save_time);
  if (s.damaged_frames > 0)
    std::fprintf(stderr,
                 "  damaged input frames: %lld (concealed by the decoder; see the warnings)\n",
                 (long long)s.damaged_frames);
}

void print_batch_summary(const upframe::BatchResult& batch) {
  std::fprintf(stderr, "\nupframe: batch done: %zu file(s), %d failed, %.2fs\n", batch.files.size(),
               batch.failed(), batch.total_time);
  for (const auto& f : batch.files)
    std::fprintf(stderr, "  %-6s %s -> %s%s%s\n",
                 f.skipped ? "skip"
                 : f.ok    ? "ok"
                           : "FAILED",
                 f.input.c_str(), f.output.c_str(), f.ok ? "" : ": ", f.error.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  // plan, run-segment, join, submit, status: distributed jobs (cli/scale_commands.cpp).
  if (int status = upframe::cli::run_scale_command(argc, argv); status >= 0) return status;
  if (argc > 1 && std::string_view(argv[1]) == "serve")
    return run_serve_command(argc - 1, argv + 1);
  if (argc > 1 && std::string_view(argv[1]) == "model-info")
    return run_model_info_command(argc - 1, argv + 1);
  CLI::App app{
      "upframe: upscale videos and images, each duplicate frame upscaled once\n"
      "Subcommand: upframe serve [--host H] [--port N] [--root DIR]... [--token T]  (a local "
      "web UI; see upframe serve --help)"};
  upframe::cli::use_help_style(app);
  app.set_version_flag("--version", "upframe 0.1.0");
  app.footer(
      "Models: realesr-animevideov3 (anime / video, x2 x3 x4; the default), realesr-general-x4v3 "
      "(photos and other live-action pictures, x4), lanczos and bicubic (no network); "
      "--model FILE for your own: ncnn .param, PyTorch .pth/.pt/.ckpt, .safetensors, .onnx "
      "(docs/MODELS.md).\n"
      "Model files: upframe model-info FILE [--json]\n"
      "Distributed jobs: upframe plan | run-segment | join | submit | status (docs/SCALE.md)");
  std::string input, config_file;
  app.add_option("input", input, "input video or image, or a folder of them")
      ->required()
      ->type_name("PATH");
  upframe::cli::GivenSettings given;
  upframe::cli::add_setting_flags(app, given, config_file);
  if (int status = upframe::cli::parse_command_line(app, argc, argv); status >= 0) return status;

  upframe::Settings settings;
  try {
    config_file = upframe::cli::load_settings(settings, config_file, given);
    settings.input = input;
  } catch (const upframe::Error& e) {
    return upframe::cli::report_error(e);
  }

  upframe::cli::set_up_console(settings.quiet);
  if (!config_file.empty()) spdlog::info("config file: {}", config_file);

  try {
    ProgressPrinter printer(settings.progress_json, settings.quiet);
    if (std::filesystem::is_directory(settings.input)) {
      upframe::BatchResult batch = upframe::run_batch(settings, std::ref(printer));
      if (!settings.quiet && !settings.progress_json) print_batch_summary(batch);
      return int(batch.failed() ? ExitCode::kBatchHadFailures : ExitCode::kOk);
    }
    upframe::JobStats stats = upframe::run_job(settings, std::ref(printer));
    // An already complete job said so in its one info line: there is nothing to sum up.
    if (!settings.quiet && !settings.progress_json && !stats.already_complete) print_summary(stats);
    return 0;
  } catch (const upframe::Error& e) {
    return upframe::cli::report_error(e);
  } catch (const std::exception& e) {
    upframe::cli::print_error(std::string(input) + ": " + e.what());
    return int(ExitCode::kProcessingFailed);
  }
}
