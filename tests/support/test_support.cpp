#include "support/test_support.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace upframe::test {

fs::path scratch_dir(const std::string& name) {
  const char* base = std::getenv("UPFRAME_TEST_TMP");
  fs::path root = base ? fs::path(base) : fs::temp_directory_path() / "upframe-tests";
  static std::atomic<int> counter{0};
  fs::path dir = root / (name + "-" + std::to_string(getpid()) + "-" + std::to_string(counter++));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

fs::path source_dir() { return UPFRAME_SOURCE_DIR; }
fs::path cli_path() { return UPFRAME_CLI_PATH; }

std::string quote(const std::string& word) {
  std::string out = "'";
  for (char c : word) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

CommandResult run_command(const std::string& command) {
  fs::path dir = scratch_dir("cmd");
  fs::path out = dir / "stdout", err = dir / "stderr";
  std::string full = "(" + command + ") >" + quote(out) + " 2>" + quote(err) + " </dev/null";
  int status = std::system(full.c_str());
  CommandResult r;
  if (status == -1) throw std::runtime_error("cannot run: " + command);
  if (WIFEXITED(status))
    r.exit_status = WEXITSTATUS(status);
  else if (WIFSIGNALED(status))
    r.exit_status = 128 + WTERMSIG(status);
  r.stdout_text = read_file(out);
  r.stderr_text = read_file(err);
  fs::remove_all(dir);
  return r;
}

CommandResult run_cli(const std::string& args) {
  return run_command(quote(cli_path().string()) + " " + args);
}

std::vector<std::string> framemd5(const fs::path& file) {
  auto r = run_command("ffmpeg -hide_banner -v error -i " + quote(file.string()) +
                       " -map 0 -f framemd5 -");
  if (r.exit_status != 0) return {"ffmpeg failed: " + r.stderr_text};
  std::vector<std::string> lines;
  std::istringstream in(r.stdout_text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty() && line[0] != '#') lines.push_back(line);
  return lines;
}

}  // namespace upframe::test
