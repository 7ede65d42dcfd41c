// Helpers of the web tests: a real `upframe serve` process on a free loopback port, an HTTP
// client for its API, and a minimal W3C WebDriver client for Debian's chromium-driver.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

namespace upframe::test {

namespace fs = std::filesystem;

// A child process with its stdout's first line read (the URL `upframe serve` prints).
class ChildProcess {
 public:
  // Runs `argv` (argv[0] a path), stderr to `log_file`, with `env` ("NAME=VALUE") added to
  // the environment. Throws if it cannot start.
  ChildProcess(const std::vector<std::string>& argv, const fs::path& log_file,
               const std::vector<std::string>& env = {});
  ~ChildProcess();  // SIGKILL if still running
  // The first line it prints on stdout, waiting up to `timeout` (empty if none came).
  std::string first_line(std::chrono::milliseconds timeout);
  // Sends `signal` and waits up to `timeout`; the exit status (128 + signal if killed by
  // one), or -1 if it did not end in time.
  int stop(int signal, std::chrono::milliseconds timeout);
  // Waits for the end without sending anything.
  int wait(std::chrono::milliseconds timeout);

 private:
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  int status_ = -1;
};

// `upframe serve --port 0 --root ROOT [extra...]`, ready to take requests. It keeps its jobs
// under `state_home` (XDG_STATE_HOME; default: ROOT/../state) and takes model uploads into
// ROOT/../data/upframe/models (XDG_DATA_HOME), never the user's.
class ServeProcess {
 public:
  ServeProcess(const fs::path& root, const std::vector<std::string>& extra = {},
               const fs::path& state_home = {});
  const std::string& url() const { return url_; }  // "http://127.0.0.1:PORT/" (+ ?token=)
  int port() const { return port_; }
  // The page's token (what its state-changing requests send).
  const std::string& token() const { return token_; }
  httplib::Client client() const;
  // POST with the page's token header.
  httplib::Result post_json(const std::string& path, const nlohmann::json& body) const;
  nlohmann::json get_json(const std::string& path) const;
  // Polls GET /api/jobs/ID until `done(job)` or the timeout; returns the last answer.
  nlohmann::json wait_job(int64_t id, const std::function<bool(const nlohmann::json&)>& done,
                          std::chrono::seconds timeout) const;
  int stop(int signal) { return process_.stop(signal, std::chrono::seconds(30)); }
  // The job file (XDG_STATE_HOME/upframe/jobs.sqlite).
  fs::path job_store() const { return state_home_ / "upframe" / "jobs.sqlite"; }
  // The user's models folder it sees (XDG_DATA_HOME/upframe/models).
  fs::path user_models_dir() const { return data_home_ / "upframe" / "models"; }
  std::string log() const;

 private:
  fs::path log_file_;
  fs::path state_home_;
  fs::path data_home_;
  ChildProcess process_;
  std::string url_, token_;
  int port_ = 0;
};

// A free TCP port on 127.0.0.1 (bound, read and released).
int free_port();

bool job_ended(const nlohmann::json& job);

// The HTTP status of an answer (-1: none) and its JSON "error" ("" when it has none).
int status_of(const httplib::Result& res);
std::string error_of(const httplib::Result& res);
// A job's log lines, one per line.
std::string log_text(const nlohmann::json& job);

// A clip of 1200 tiny frames (a pan: no duplicates), and a job on it with the neural model and
// 5-frame segments: long enough that a stop or a kill lands mid-job however fast the machine
// is (upscaling speed here varies a hundredfold with the other work on the machine), with
// finished segments by then. The tests never run it to the end.
void make_long_clip(const fs::path& path);
nlohmann::json long_job_request(const std::string& input = "long.mp4");
// Ended, or at least 7 frames done (a segment finished).
bool some_segments_done(const nlohmann::json& job);

// A headless Chromium session through chromedriver's W3C WebDriver protocol.
class Browser {
 public:
  // Throws std::runtime_error when chromedriver or chromium cannot start.
  Browser();
  ~Browser();
  void open(const std::string& url);
  // The WebDriver id of the element matching `css` (throws if none).
  std::string find(const std::string& css);
  void click(const std::string& css);
  void type(const std::string& css, const std::string& text);
  // Chooses the file at `path` in the <input type=file> matching `css`.
  void attach_file(const std::string& css, const fs::path& path);
  // A mouse drag across the element matching `css`, from one horizontal offset from its
  // centre to another (CSS pixels), with the WebDriver actions API.
  void drag(const std::string& css, int from_x, int to_x);
  std::string text(const std::string& css);
  // Runs `script` (a function body: `return ...;`) in the page.
  nlohmann::json run(const std::string& script);
  // Polls `condition` (a JS expression) until truthy; false after `timeout`.
  bool wait_for(const std::string& condition, std::chrono::seconds timeout);
  // The page as PNG bytes.
  std::string screenshot();

  static bool available();

 private:
  nlohmann::json command(const std::string& method, const std::string& path,
                         const nlohmann::json& body = nullptr);
  std::unique_ptr<ChildProcess> driver_;
  std::unique_ptr<httplib::Client> http_;
  std::string session_;
};

}  // namespace upframe::test
