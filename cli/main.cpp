// The `upframe` command: flags and config into Settings, then run_job(). No logic a
// library user would need lives here; this file only parses, prints and maps exit codes.
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <iostream>
#include <map>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "report_error.hpp"
#include "scale_commands.hpp"
#include "model_info_command.hpp"
#include "serve_command.hpp"
#include "upframe/config.hpp"
#include "upframe/error.hpp"
#include "upframe/log.hpp"
#include "upframe/pipeline/batch.hpp"
#include "upframe/pipeline/job.hpp"

namespace {

using upframe::ExitCode;

void on_signal(int sig) { upframe::request_stop(sig); }

void print_error(const std::string& text) {
  std::fprintf(stderr, "upframe: error: %s\n", text.c_str());
}

std::string flag_list(const upframe::SettingSpec& spec) {
  std::string flags = spec.short_flag.empty() ? "" : spec.short_flag + ",";
  flags += upframe::flag_name(spec);
  // Booleans get a --no- form, except those whose name already says "no".
  if (spec.kind == upframe::SettingKind::kBool && spec.short_flag.empty() &&
      !spec.key.starts_with("no_"))
    flags += ",!--no-" + upframe::flag_name(spec).substr(2);
  return flags;
}

// How --help shows a setting's value after its flag: the choices ("auto|cpu|cuda"), a range
// ("1..16"), "N|auto", or what kind of value it is.
std::string value_form(const upframe::SettingSpec& spec) {
  using K = upframe::SettingKind;
  switch (spec.kind) {
    case K::kChoice: {
      std::vector<std::string> choices;
      for (const std::string& c : spec.choices)
        if (!c.empty()) choices.push_back(c);
      return CLI::detail::join(choices, "|");
    }
    case K::kInt:
      return spec.max >= (1L << 30) ? "N"
                                    : std::to_string(spec.min) + ".." + std::to_string(spec.max);
    case K::kIntOrAuto:
      return "N|auto";
    case K::kDouble:
      return "NUMBER";
    case K::kString:
      return "NAME";
    case K::kPath:
      return "PATH";
    case K::kBool:
      break;
  }
  return {};
}

// --help lines as "--device auto|cpu|cuda   where to run [default: auto]": the value's form
// (CLI11's type name) after the flag, the default (CLI11's default string) after the text.
class HelpFormatter : public CLI::Formatter {
 public:
  // "--parallel,--no-parallel" (CLI11 would add "{false}" to the negative form).
  std::string make_option_name(const CLI::Option* opt, bool is_positional) const override {
    std::string name = CLI::Formatter::make_option_name(opt, is_positional);
    for (size_t at; (at = name.find("{false}")) != std::string::npos;) name.erase(at, 7);
    return name;
  }
  std::string make_option_opts(const CLI::Option* opt) const override {
    std::string out;
    if (opt->get_type_size() != 0 && !opt->get_type_name().empty())
      out += " " + opt->get_type_name();
    if (opt->get_required()) out += " " + get_label("REQUIRED");
    return out;
  }
  std::string make_option_desc(const CLI::Option* opt) const override {
    std::string desc = opt->get_description();
    if (!opt->get_default_str().empty()) desc += " [default: " + opt->get_default_str() + "]";
    return desc;
  }
};

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
    std::string line = fmt::format(
        "frames {}/{} (unique {}, duplicates {}) {:.1f} fps, ETA {} | busy: decode {:.0f}% "
        "detect {:.0f}% upscale {:.0f}% save {:.0f}%",
        p.frames_done, total, p.unique, p.duplicates, p.fps, eta, 100 * p.stage_busy[0],
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
  app.formatter(std::make_shared<HelpFormatter>());
  app.get_formatter()->column_width(40);
  app.set_version_flag("--version", "upframe 0.1.0");
  app.footer(
      "Distributed jobs: upframe plan | run-segment | join | submit | status (docs/SCALE.md)\n"
      "Model files: upframe model-info FILE [--json] (ncnn .param, .pth, .safetensors; "
      "docs/MODELS.md)");
  std::string input, config_file;
  app.add_option("input", input, "input video or image, or a folder of them")
      ->required()
      ->type_name("PATH");
  app.add_option("--config", config_file, "TOML config file")
      ->type_name("FILE")
      ->default_str("./upframe.toml if present");

  // Values in command-line order, applied after the config file so flags override it. The
  // values are checked by upframe::set_setting (the same checks as a config file's).
  std::vector<std::pair<std::string, std::string>> given;
  for (const upframe::SettingSpec& spec : upframe::setting_specs()) {
    CLI::Option* option = nullptr;
    if (spec.kind == upframe::SettingKind::kBool) {
      option = app.add_flag_function(
          flag_list(spec),
          [&given, key = spec.key](int64_t count) {
            given.emplace_back(key, count > 0 ? "true" : "false");
          },
          spec.help);
    } else {
      option =
          app.add_option_function<std::string>(
                 flag_list(spec),
                 [&given, key = spec.key](const std::string& v) { given.emplace_back(key, v); },
                 spec.help)
              ->type_name(value_form(spec));
    }
    option->default_str(upframe::default_text(spec.key));
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    print_error(e.what());
    return int(ExitCode::kUsage);
  }

  upframe::Settings settings;
  try {
    if (!config_file.empty()) {
      upframe::apply_config_file(settings, config_file);
    } else if (auto found = upframe::default_config_file()) {
      upframe::apply_config_file(settings, *found);
      config_file = found->string();
    }
    for (const auto& [key, value] : given)
      upframe::set_setting(settings, key, value, upframe::kCommandLine);
    settings.input = input;
  } catch (const upframe::Error& e) {
    print_error(e.what());
    return int(e.code());
  }

  auto logger = spdlog::stderr_color_mt("upframe");
  logger->set_pattern("upframe: %^%l%$: %v");
  spdlog::set_default_logger(logger);
  upframe::set_log_level(settings.quiet ? upframe::LogLevel::kError : upframe::LogLevel::kInfo);
  if (!config_file.empty()) spdlog::info("config file: {}", config_file);

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);

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
    print_error(std::string(input) + ": " + e.what());
    return int(ExitCode::kProcessingFailed);
  }
}
