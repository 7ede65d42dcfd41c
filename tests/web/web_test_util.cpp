#include "web/web_test_util.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <regex>
#include <stdexcept>
#include <thread>

#include "support/synth.hpp"
#include "support/test_support.hpp"

namespace upframe::test {

using nlohmann::json;
using namespace std::chrono_literals;

ChildProcess::ChildProcess(const std::vector<std::string>& argv, const fs::path& log_file,
                           const std::vector<std::string>& env) {
  // The environment is built before fork: the child only calls async-signal-safe functions.
  std::vector<std::string> environment;
  for (char** e = environ; *e; ++e) {
    const std::string entry = *e;
    const std::string name = entry.substr(0, entry.find('=') + 1);
    if (std::none_of(env.begin(), env.end(),
                     [&](const std::string& mine) { return mine.starts_with(name); }))
      environment.push_back(entry);
  }
  environment.insert(environment.end(), env.begin(), env.end());
  std::vector<char*> envp;
  for (std::string& entry : environment) envp.push_back(entry.data());
  envp.push_back(nullptr);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int out[2];
  if (pipe(out) != 0) throw std::runtime_error("pipe failed");
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    dup2(out[1], 1);
    const int log = open(log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (log >= 0) dup2(log, 2);
    close(out[0]);
    execve(args[0], args.data(), envp.data());
    _exit(127);
  }
  close(out[1]);
  stdout_fd_ = out[0];
}

ChildProcess::~ChildProcess() {
  if (status_ < 0 && pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (stdout_fd_ >= 0) close(stdout_fd_);
}

std::string ChildProcess::first_line(std::chrono::milliseconds timeout) {
  std::string line;
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    pollfd p{stdout_fd_, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    char c;
    if (read(stdout_fd_, &c, 1) != 1) break;
    if (c == '\n') return line;
    line += c;
  }
  return {};
}

int ChildProcess::wait(std::chrono::milliseconds timeout) {
  if (status_ >= 0) return status_;
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return status_;
    }
    std::this_thread::sleep_for(20ms);
  }
  return -1;
}

int ChildProcess::stop(int signal, std::chrono::milliseconds timeout) {
  if (status_ < 0) kill(pid_, signal);
  return wait(timeout);
}

ServeProcess::ServeProcess(const fs::path& root, const std::vector<std::string>& extra,
                           const fs::path& state_home)
    : log_file_(root.parent_path() / ("serve-" + std::to_string(getpid()) + ".log")),
      state_home_(state_home.empty() ? root.parent_path() / "state" : state_home),
      data_home_(root.parent_path() / "data"),
      process_(
          [&] {
            std::vector<std::string> argv = {cli_path().string(), "serve", "--port", "0", "--root",
                                             root.string()};
            argv.insert(argv.end(), extra.begin(), extra.end());
            return argv;
          }(),
          log_file_,
          {"XDG_STATE_HOME=" + state_home_.string(), "XDG_DATA_HOME=" + data_home_.string()}) {
  url_ = process_.first_line(20s);
  std::smatch m;
  if (!std::regex_search(url_, m, std::regex(R"(:(\d+)/)")))
    throw std::runtime_error("upframe serve printed no URL; its log:\n" + log());
  port_ = std::stoi(m[1]);
  // The page carries the token its requests send.
  auto page = client().Get(url_.substr(url_.find('/', 7)));
  if (!page) throw std::runtime_error("no page from " + url_);
  std::smatch t;
  if (std::regex_search(page->body, t, std::regex(R"(name="upframe-token" content="([^"]+)\")")))
    token_ = t[1];
}

httplib::Client ServeProcess::client() const {
  httplib::Client c("127.0.0.1", port_);
  c.set_read_timeout(120, 0);
  return c;
}

httplib::Result ServeProcess::post_json(const std::string& path, const json& body) const {
  return client().Post(path, {{"X-Upframe-Token", token_}}, body.dump(), "application/json");
}

json ServeProcess::get_json(const std::string& path) const {
  auto res = client().Get(path);
  if (!res) throw std::runtime_error("GET " + path + " failed");
  return json::parse(res->body);
}

bool job_ended(const json& job) {
  const std::string state = job.value("state", "");
  return state == "done" || state == "failed" || state == "cancelled";
}

int status_of(const httplib::Result& res) { return res ? res->status : -1; }

std::string error_of(const httplib::Result& res) {
  if (!res) return "no answer";
  const json body = json::parse(res->body, nullptr, false);
  return body.is_object() ? body.value("error", "") : "";
}

std::string log_text(const json& job) {
  std::string text;
  for (const auto& line : job["log"]) text += line.get<std::string>() + "\n";
  return text;
}

void make_long_clip(const fs::path& path) {
  synth::encode_clip(path, 1200, [](int index) {
    return synth::render_frame(32, 18, AV_PIX_FMT_YUV420P, [index](int x, int y) {
      return synth::scene_luma(3, x + index, y);  // a pan: no duplicates
    });
  });
}

json long_job_request(const std::string& input) {
  return {{"input", input},
          {"model", "realesr-animevideov3"},
          {"segment_frames", 5},
          {"skip_duplicates", false}};
}

bool some_segments_done(const json& job) {
  return job_ended(job) || (job["progress"].is_object() && job["progress"]["frames_done"] >= 7);
}

json ServeProcess::wait_job(int64_t id, const std::function<bool(const json&)>& done,
                            std::chrono::seconds timeout) const {
  const auto end = std::chrono::steady_clock::now() + timeout;
  json job;
  while (std::chrono::steady_clock::now() < end) {
    job = get_json("/api/jobs/" + std::to_string(id));
    if (done(job)) return job;
    std::this_thread::sleep_for(50ms);
  }
  return job;
}

std::string ServeProcess::log() const { return read_file(log_file_); }

int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// --- WebDriver ---

namespace {
const char* kChromedriver = "/usr/bin/chromedriver";
const char* kChromium = "/usr/bin/chromium";
const char* kElementKey = "element-6066-11e4-a52e-4f735466cecf";  // W3C's element id key
}  // namespace

bool Browser::available() { return fs::exists(kChromedriver) && fs::exists(kChromium); }

Browser::Browser() {
  const int port = free_port();
  driver_ = std::make_unique<ChildProcess>(
      std::vector<std::string>{kChromedriver, "--port=" + std::to_string(port)},
      scratch_dir("chromedriver") / "chromedriver.log");
  http_ = std::make_unique<httplib::Client>("127.0.0.1", port);
  http_->set_read_timeout(60, 0);
  for (int i = 0; i < 100 && !http_->Get("/status"); ++i) std::this_thread::sleep_for(50ms);
  json caps = {{"capabilities",
                {{"alwaysMatch",
                  {{"browserName", "chrome"},
                   {"goog:chromeOptions",
                    {{"binary", kChromium},
                     {"args",
                      {"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                       "--window-size=1400,1000"}}}}}}}}};
  json answer = command("POST", "/session", caps);
  session_ = answer["sessionId"];
}

Browser::~Browser() {
  if (!session_.empty()) {
    try {
      command("DELETE", "/session/" + session_);
    } catch (...) {
    }
  }
}

json Browser::command(const std::string& method, const std::string& path, const json& body) {
  httplib::Result res =
      method == "GET" ? http_->Get(path)
      : method == "DELETE"
          ? http_->Delete(path)
          : http_->Post(path, (body.is_null() ? json::object() : body).dump(), "application/json");
  if (!res) throw std::runtime_error("WebDriver " + method + " " + path + ": no answer");
  json answer = json::parse(res->body);
  if (res->status != 200)
    throw std::runtime_error("WebDriver " + method + " " + path + ": " + res->body.substr(0, 400));
  return path == "/session" ? answer["value"] : answer["value"];
}

void Browser::open(const std::string& url) {
  command("POST", "/session/" + session_ + "/url", {{"url", url}});
}

std::string Browser::find(const std::string& css) {
  json e = command("POST", "/session/" + session_ + "/element",
                   {{"using", "css selector"}, {"value", css}});
  return e[kElementKey];
}

void Browser::click(const std::string& css) {
  command("POST", "/session/" + session_ + "/element/" + find(css) + "/click", json::object());
}

void Browser::type(const std::string& css, const std::string& text) {
  const std::string id = find(css);
  command("POST", "/session/" + session_ + "/element/" + id + "/clear", json::object());
  command("POST", "/session/" + session_ + "/element/" + id + "/value", {{"text", text}});
}

void Browser::attach_file(const std::string& css, const fs::path& path) {
  // A file input takes the path as typed text (and has nothing to clear).
  command("POST", "/session/" + session_ + "/element/" + find(css) + "/value",
          {{"text", fs::absolute(path).string()}});
}

void Browser::drag(const std::string& css, int from_x, int to_x) {
  const json origin = {{kElementKey, find(css)}};
  const json actions = {
      {"actions",
       {{{"type", "pointer"},
         {"id", "mouse"},
         {"parameters", {{"pointerType", "mouse"}}},
         {"actions",
          {{{"type", "pointerMove"}, {"origin", origin}, {"x", from_x}, {"y", 0}},
           {{"type", "pointerDown"}, {"button", 0}},
           {{"type", "pointerMove"}, {"origin", origin}, {"x", to_x}, {"y", 0}, {"duration", 100}},
           {{"type", "pointerUp"}, {"button", 0}}}}}}}};
  command("POST", "/session/" + session_ + "/actions", actions);
}

std::string Browser::text(const std::string& css) {
  return command("GET", "/session/" + session_ + "/element/" + find(css) + "/text");
}

json Browser::run(const std::string& script) {
  return command("POST", "/session/" + session_ + "/execute/sync",
                 {{"script", script}, {"args", json::array()}});
}

bool Browser::wait_for(const std::string& condition, std::chrono::seconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    json v = run("return Boolean(" + condition + ");");
    if (v.is_boolean() && v.get<bool>()) return true;
    std::this_thread::sleep_for(100ms);
  }
  return false;
}

std::string Browser::screenshot() {
  const std::string b64 = command("GET", "/session/" + session_ + "/screenshot");
  std::string out;
  int bits = 0, value = 0;
  for (char c : b64) {
    int d = c >= 'A' && c <= 'Z'   ? c - 'A'
            : c >= 'a' && c <= 'z' ? c - 'a' + 26
            : c >= '0' && c <= '9' ? c - '0' + 52
            : c == '+'             ? 62
            : c == '/'             ? 63
                                   : -1;
    if (d < 0) continue;
    value = (value << 6) | d;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += char((value >> bits) & 0xff);
    }
  }
  return out;
}

}  // namespace upframe::test
