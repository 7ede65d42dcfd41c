#include "serve_command.hpp"

#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>

#include "report_error.hpp"
#include "setup.hpp"
#include "upframe/config.hpp"
#include "upframe/error.hpp"
#include "upframe/web/server.hpp"

int run_serve_command(int argc, char** argv) {
  CLI::App app{
      "upframe serve: a local web UI (browse, upload, start jobs, live progress, before/after);\n"
      "its jobs are kept across restarts in $XDG_STATE_HOME/upframe/jobs.sqlite\n"
      "(~/.local/state/upframe/ by default)"};
  app.name("upframe serve");
  upframe::web::ServeOptions options;
  std::vector<std::string> roots;
  uint64_t max_upload_mib = options.max_upload_bytes >> 20;
  uint64_t max_model_upload_mib = options.max_model_upload_bytes >> 20;
  std::string models_dir;
  app.add_option("--host", options.host,
                 "address to listen on (another than loopback needs --token)")
      ->capture_default_str();
  app.add_option("--port", options.port, "port (0: any free one; the printed URL says which)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  app.add_option("--root", roots,
                 "folder the UI may browse, read and write under (repeatable) [default: the "
                 "working folder]")
      ->type_name("DIR");
  app.add_option("--token", options.token,
                 "secret every request must carry (the printed URL has it); at least 16 of "
                 "[A-Za-z0-9_-]")
      ->type_name("TOKEN");
  app.add_option("--max-upload-mb", max_upload_mib, "largest upload, MiB")->capture_default_str();
  app.add_option("--max-model-upload-mb", max_model_upload_mib, "largest model file upload, MiB")
      ->capture_default_str();
  app.add_option("--models-dir", models_dir,
                 "folder of your own models: searched first for a job's model NAME, and where "
                 "uploaded models go [default: models_dir of ./upframe.toml, else "
                 "$XDG_DATA_HOME/upframe/models]")
      ->type_name("DIR");
  if (int status = upframe::cli::parse_command_line(app, argc, argv); status >= 0) return status;
  for (const std::string& root : roots) options.roots.emplace_back(root);
  options.max_upload_bytes = max_upload_mib << 20;
  options.max_model_upload_bytes = max_model_upload_mib << 20;

  upframe::cli::set_up_console(/*quiet=*/false);
  try {
    // The same models folder a command in this folder uses: --models-dir, else the config's.
    if (models_dir.empty()) {
      if (const auto config = upframe::default_config_file()) {
        upframe::Settings settings;
        upframe::apply_config_file(settings, *config);
        models_dir = settings.models_dir.string();
      }
    }
    if (!models_dir.empty()) {
      std::error_code ec;
      if (!std::filesystem::is_directory(models_dir, ec))
        throw upframe::UsageError(models_dir, "models folder not found");
      options.models_dir = std::filesystem::absolute(models_dir);
    }
    const int signal = upframe::web::serve(options, [](const std::string& url) {
      // The URL alone on stdout, for scripts and tests; the log goes to stderr.
      std::cout << url << std::endl;
    });
    std::fprintf(stderr, "upframe: interrupted\n");
    return 128 + signal;
  } catch (const upframe::Error& e) {
    upframe::cli::print_error(e.what());
    return int(e.code());
  } catch (const std::exception& e) {
    upframe::cli::print_error(std::string("serve: ") + e.what());
    return int(upframe::ExitCode::kProcessingFailed);
  }
}
