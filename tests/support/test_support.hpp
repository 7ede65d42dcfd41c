// Helpers shared by the test programs: scratch folders, running the real CLI, file paths.
#pragma once

#include <filesystem>
#include <string>

namespace upframe::test {

namespace fs = std::filesystem;

// A fresh, empty folder for one test (under the build tree), named after `name`.
fs::path scratch_dir(const std::string& name);
// The source tree (models/, tests/golden/, samples/).
fs::path source_dir();
// The built `upframe` program.
fs::path cli_path();

struct CommandResult {
  int exit_status = -1;  // WEXITSTATUS, or 128+signal
  std::string stdout_text;
  std::string stderr_text;
};
// The whole content of a file (empty if it cannot be read).
std::string read_file(const fs::path& path);

// Runs `command` through /bin/sh, capturing stdout and stderr.
CommandResult run_command(const std::string& command);
// Runs the upframe CLI with `args` (already shell-quoted where needed).
CommandResult run_cli(const std::string& args);
// Shell-quotes a path or word.
std::string quote(const std::string& word);

}  // namespace upframe::test
