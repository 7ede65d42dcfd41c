// Helpers shared by the test programs: scratch folders, running the real CLI, file paths.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

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

// Every decoded frame of every stream of `file` (ffmpeg's framemd5): stream, pts, duration,
// size and MD5 of its data, one line each. One "ffmpeg failed: ..." line when it cannot read it.
std::vector<std::string> framemd5(const fs::path& file);

}  // namespace upframe::test
