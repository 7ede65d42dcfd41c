// What every upframe command does the same way, written once: parsing with CLI11 (with "did
// you mean" for a mistyped flag), the settings table as flags, the config file under the
// flags, the console logger and the stop signals.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "upframe/config.hpp"

namespace upframe::cli {

// Setting values given as flags, in command-line order: applied after the config file, so
// flags override it, and checked by set_setting (the same checks as a config file's).
using GivenSettings = std::vector<std::pair<std::string, std::string>>;

// `--help` in upframe's style: the value's form after the flag ("--device auto|cpu|cuda"),
// the default after the text.
void use_help_style(CLI::App& app);

// One flag per setting of the table (include/upframe/config.hpp), each recording its value
// into `given`; `--config FILE` into `config_file`.
void add_setting_flags(CLI::App& app, GivenSettings& given, std::string& config_file);

// Parses argv. Returns -1 to go on; else the exit status, after printing help, the version
// or the usage error (one line; a mistyped flag gets "did you mean --xyz?").
int parse_command_line(CLI::App& app, int argc, char** argv);

// `config_file` (or ./upframe.toml when empty and present), then the flags, into `settings`.
// Returns the config file read ("" for none). Throws UsageError.
std::string load_settings(Settings& settings, const std::string& config_file,
                          const GivenSettings& given);

// The console: "upframe: LEVEL: text" on stderr, info level (errors only when `quiet`, debug
// when the environment has UPFRAME_LOG=debug), libav's messages routed through it; SIGINT and
// SIGTERM ask the running job to stop.
void set_up_console(bool quiet);

}  // namespace upframe::cli
