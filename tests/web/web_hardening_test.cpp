// What an adversarial pass broke in `upframe serve` (issue 21) and the jobs that must survive
// a restart (issue 22), through a real server process and real HTTP: DNS-rebinding Host
// names, cross-origin POSTs, malformed requests, a bodiless cancel, a batch with a bad file,
// 60 clients trickling header lines, and a server killed while a job runs.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <thread>

#include "support/synth.hpp"
#include "support/test_support.hpp"
#include "web/web_test_util.hpp"

namespace upframe::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

fs::path make_root(const std::string& name) {
  const fs::path root = scratch_dir(name) / "root";
  fs::create_directories(root);
  synth::encode_clip(root / "clip.mp4", synth::on_twos_clip({64, 36, 24}));
  return root;
}

// The error of an answer that must be JSON with one.
std::string json_error_of(const httplib::Result& res) {
  if (res) {
    const json body = json::parse(res->body, nullptr, false);
    EXPECT_TRUE(body.is_object() && body.contains("error")) << res->body.substr(0, 300);
  }
  return error_of(res);
}

// A TCP connection to the server on 127.0.0.1, for requests httplib's client would not send.
int connect_to(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(uint16_t(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Sends `request` as is and reads the answer until the server closes (at most `timeout`).
std::string raw_exchange(int port, const std::string& request, std::chrono::seconds timeout) {
  const int fd = connect_to(port);
  if (fd < 0) return {};
  send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string answer;
  const auto end = Clock::now() + timeout;
  char buffer[4096];
  while (Clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    const ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    answer.append(buffer, size_t(n));
  }
  close(fd);
  return answer;
}

TEST(WebHardening, OnlyThisServersLoopbackHostIsAnswered) {
  const fs::path root = make_root("web-host");
  ServeProcess serve(root);
  const std::string port = std::to_string(serve.port());
  const std::string other_port = std::to_string(serve.port() == 65535 ? 1 : serve.port() + 1);
  // DNS names that start like loopback literals, other ports, short and hex forms.
  for (const std::string& host : std::vector<std::string>{
           "127.0.0.1.evil.example:" + port, "127.0.0.1.evil.example",
           "localhost.evil.example:" + port, "evil.example:" + port, "127.0.0.1:" + other_port,
           "127.0.0.1", "127.1:" + port, "0x7f.0.0.1:" + port, "2130706433:" + port,
           "[::1].evil.example:" + port, "localhost:" + port + "x",
           "127.0.0.1:" + port + ":" + port, "[127.0.0.1]:" + port, "ip6-localhost:" + port,
           std::string("")}) {
    auto res = serve.client().Get("/api/roots", {{"Host", host}});
    EXPECT_EQ(status_of(res), 403) << host;
    EXPECT_NE(error_of(res).find("is not this server's loopback address and port"),
              std::string::npos)
        << host;
    // The page (and the token in it) is not served to such a name either.
    auto page = serve.client().Get("/", {{"Host", host}});
    EXPECT_EQ(status_of(page), 403) << host;
    if (page) {
      EXPECT_EQ(page->body.find(serve.token()), std::string::npos) << host;
    }
  }
  for (const std::string& host :
       std::vector<std::string>{"127.0.0.1:" + port, "127.9.8.7:" + port, "localhost:" + port,
                                "LocalHost:" + port, "[::1]:" + port}) {
    EXPECT_EQ(status_of(serve.client().Get("/api/roots", {{"Host", host}})), 200) << host;
  }
  // A long Host is quoted in part only.
  auto res = serve.client().Get("/api/roots", {{"Host", std::string(3000, 'a')}});
  EXPECT_EQ(status_of(res), 403);
  EXPECT_LT(error_of(res).size(), 140u);

  // --host takes the same parse: a DNS name is not loopback whatever it starts with.
  for (const std::string host : {"127.0.0.1.evil.example", "localhost.evil.example"}) {
    CommandResult r = run_cli("serve --port 0 --host " + host);
    EXPECT_EQ(r.exit_status, 2) << host;
    EXPECT_NE(r.stderr_text.find("upframe: error: " + host +
                                 ": serving another address than loopback needs --token"),
              std::string::npos)
        << r.stderr_text;
  }
}

TEST(WebHardening, CrossOriginPostsAreRefused) {
  const fs::path root = make_root("web-origin");
  ServeProcess serve(root);
  const std::string body = json{{"input", "clip.mp4"}, {"model", "lanczos"}}.dump();
  const std::string self = "http://127.0.0.1:" + std::to_string(serve.port());
  for (const std::string& origin :
       {std::string("http://evil.example"), std::string("null"),
        "http://127.0.0.1:" + std::to_string(serve.port() + 1),
        "http://localhost:" + std::to_string(serve.port()), std::string("http://127.0.0.1")}) {
    auto res =
        serve.client().Post("/api/jobs", {{"X-Upframe-Token", serve.token()}, {"Origin", origin}},
                            body, "application/json");
    EXPECT_EQ(status_of(res), 403) << origin;
    EXPECT_NE(error_of(res).find("is not this server's"), std::string::npos) << origin;
  }
  EXPECT_EQ(serve.get_json("/api/jobs")["jobs"].size(), 0u);
  // The page's own origin (what the browser sends for its fetches) is fine; so is none.
  auto res =
      serve.client().Post("/api/jobs", {{"X-Upframe-Token", serve.token()}, {"Origin", self}}, body,
                          "application/json");
  EXPECT_EQ(status_of(res), 201) << (res ? res->body : "");
  // GETs change nothing: a foreign Origin on one is not refused (the Host check still holds).
  EXPECT_EQ(status_of(serve.client().Get("/api/jobs", {{"Origin", "http://evil.example"}})), 200);
}

TEST(WebHardening, MalformedRequestsGetShortJsonErrors) {
  const fs::path root = make_root("web-malformed");
  ServeProcess serve(root);
  auto post_raw = [&](const std::string& path, const std::string& text) {
    return serve.client().Post(path, {{"X-Upframe-Token", serve.token()}}, text,
                               "application/json");
  };
  auto upload = [&](const std::string& name) {
    httplib::MultipartFormDataItems items = {
        {"file", read_file(root / "clip.mp4"), name, "application/octet-stream"}};
    return serve.client().Post("/api/upload?dir=.", {{"X-Upframe-Token", serve.token()}}, items);
  };
  struct Case {
    std::string what;
    httplib::Result res;
    int status;
    std::string says;
  };
  std::vector<Case> cases;
  cases.push_back({"invalid UTF-8 in a JSON string",
                   post_raw("/api/jobs", "{\"input\": \"\xff\xfe.mp4\"}"), 400, "bad JSON"});
  cases.push_back({"invalid UTF-8 in a path parameter",
                   serve.client().Get("/api/files?path=%FF%FEx"), 400, "not UTF-8"});
  cases.push_back({"invalid UTF-8 in a preview's input",
                   post_raw("/api/preview", "{\"input\": \"clip\\udcff.mp4\", \"original\": true}"),
                   400, ""});
  cases.push_back({"an oversize job id", serve.client().Get("/api/jobs/99999999999999999999999"),
                   404, "no job 9999999999"});
  cases.push_back({"an oversize job id (events)",
                   serve.client().Get("/api/jobs/" + std::string(2000, '7') + "/events"), 404,
                   "no job 777"});
  cases.push_back({"an oversize job id (cancel)",
                   post_raw("/api/jobs/" + std::string(300, '1') + "/cancel", ""), 404,
                   "no job 111"});
  cases.push_back({"a 300-character upload name", upload(std::string(296, 'n') + ".mp4"), 400,
                   "file name too long"});
  // (httplib's form parser drops a part whose header a newline breaks: no 'file' field.)
  cases.push_back({"a newline in an upload name", upload("two\nlines.mp4"), 400, ""});
  cases.push_back(
      {"a control character in an upload name", upload("bell\x07.mp4"), 400, "bad file name"});
  cases.push_back({"a control character in an input",
                   serve.post_json("/api/jobs", {{"input", "clip\x01.mp4"}}), 400,
                   "control character"});
  cases.push_back(
      {"a newline in an output",
       serve.post_json("/api/jobs",
                       {{"input", "clip.mp4"}, {"model", "lanczos"}, {"output", "a\nb.mp4"}}),
       400, "control character"});
  cases.push_back({"a 3000-character input",
                   serve.post_json("/api/jobs", {{"input", std::string(3000, 'x')}}), 400,
                   "...: File name too long"});
  cases.push_back({"a 200-character input",
                   serve.post_json("/api/jobs", {{"input", std::string(200, 'x')}}), 404,
                   "xxx...: no such file or folder"});
  cases.push_back({"a 9000-byte input",
                   serve.post_json("/api/jobs", {{"input", std::string(9000, 'x')}}), 400,
                   "path too long"});
  cases.push_back(
      {"a 300-character unknown key",
       serve.post_json("/api/jobs", {{"input", "clip.mp4"}, {std::string(300, 'k'), 1}}), 400,
       "unknown key"});
  cases.push_back(
      {"a 5000-character value",
       serve.post_json("/api/jobs", {{"input", "clip.mp4"}, {"dedup", std::string(5000, 'g')}}),
       400, "bad value for 'dedup': too long (5000 characters)"});
  cases.push_back(
      {"a 1000-character model name",
       serve.post_json("/api/jobs", {{"input", "clip.mp4"}, {"model", std::string(1000, 'm')}}),
       400, "unknown model 'mmm"});
  cases.push_back({"a value of the wrong type",
                   serve.post_json("/api/preview", {{"input", "clip.mp4"}, {"original", "yes"}}),
                   400, "'original' must be true or false"});
  cases.push_back({"a setting of the wrong type",
                   serve.post_json("/api/jobs", {{"input", "clip.mp4"}, {"scale", json::array()}}),
                   400, "expected a string, number or boolean"});
  cases.push_back({"an unknown input (info)", serve.client().Get("/api/info?path=missing.mp4"), 404,
                   "missing.mp4: no such file"});
  cases.push_back({"an unknown input (job)",
                   serve.post_json("/api/jobs", {{"input", "missing.mp4"}}), 404,
                   "no such file or folder"});
  cases.push_back({"an unknown job", serve.client().Get("/api/jobs/42"), 404, "no job 42"});
  for (Case& c : cases) {
    EXPECT_EQ(status_of(c.res), c.status) << c.what << ": " << (c.res ? c.res->body : "");
    const std::string error = json_error_of(c.res);
    EXPECT_NE(error.find(c.says), std::string::npos) << c.what << ": " << error;
    // Short, and none of the C++ libraries' own texts.
    EXPECT_LT(error.size(), 200u) << c.what << ": " << error;
    EXPECT_EQ(error.find("json.exception"), std::string::npos) << c.what << ": " << error;
    EXPECT_EQ(error.find("stoll"), std::string::npos) << c.what << ": " << error;
    EXPECT_EQ(error.find("filesystem error"), std::string::npos) << c.what << ": " << error;
    EXPECT_EQ(error.find('\n'), std::string::npos) << c.what;
  }
  // A POST without Content-Length (httplib would read its body until the connection closes).
  const std::string answer =
      raw_exchange(serve.port(),
                   "POST /api/jobs HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(serve.port()) +
                       "\r\nX-Upframe-Token: " + serve.token() + "\r\nConnection: close\r\n\r\n",
                   10s);
  EXPECT_EQ(answer.rfind("HTTP/1.1 411", 0), 0u) << answer;
  EXPECT_NE(answer.find("a POST needs a Content-Length header"), std::string::npos) << answer;
  // Nothing was written, no job was queued.
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(root)) names.push_back(e.path().filename());
  EXPECT_EQ(names, std::vector<std::string>{"clip.mp4"});
  EXPECT_EQ(serve.get_json("/api/jobs")["jobs"].size(), 0u);
}

const json kLongJob = long_job_request();

TEST(WebHardening, CancelWithoutABodyStopsTheJob) {
  const fs::path root = make_root("web-cancel-nobody");
  make_long_clip(root / "long.mp4");
  ServeProcess serve(root);
  auto res = serve.post_json("/api/jobs", kLongJob);
  ASSERT_EQ(status_of(res), 201);
  json job = serve.wait_job(1, some_segments_done, 120s);
  ASSERT_EQ(job["state"], "running") << job.dump();
  // As `curl -X POST URL` sends it: no Content-Length, no body.
  const std::string answer = raw_exchange(
      serve.port(),
      "POST /api/jobs/1/cancel HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(serve.port()) +
          "\r\nX-Upframe-Token: " + serve.token() + "\r\nConnection: close\r\n\r\n",
      10s);
  EXPECT_EQ(answer.rfind("HTTP/1.1 200", 0), 0u) << answer;
  job = serve.wait_job(1, job_ended, 60s);
  EXPECT_EQ(job["state"], "cancelled") << job.dump();
  EXPECT_LT(job["progress"]["frames_done"].get<int>(), 1200);
}

TEST(WebHardening, ABatchWithAFailedFileSaysWhich) {
  const fs::path root = make_root("web-batch-failed");
  fs::create_directory(root / "in");
  fs::copy_file(root / "clip.mp4", root / "in" / "good.mp4");
  std::ofstream(root / "in" / "broken.mp4") << "not a video at all";
  ServeProcess serve(root);
  auto res = serve.post_json("/api/jobs", {{"input", "in"}, {"model", "lanczos"}});
  ASSERT_EQ(status_of(res), 201) << res->body;
  json job = serve.wait_job(1, job_ended, 60s);
  // Not a quiet "done": the error names how many and the first that failed.
  ASSERT_TRUE(job["error"].is_string()) << job.dump();
  EXPECT_NE(job["error"].get<std::string>().find(
                "1 of 2 files failed (first: " + (root / "in" / "broken.mp4").string() + ": "),
            std::string::npos)
      << job["error"];
  EXPECT_EQ(job["state"], "done");  // the other file was upscaled
  EXPECT_TRUE(fs::exists(root / "in_x2" / "good.mp4"));
  // Every file failed: the job failed.
  fs::remove(root / "in" / "good.mp4");
  res = serve.post_json("/api/jobs", {{"input", "in"}, {"model", "lanczos"}, {"output", "again"}});
  ASSERT_EQ(status_of(res), 201) << res->body;
  job = serve.wait_job(2, job_ended, 60s);
  EXPECT_EQ(job["state"], "failed") << job.dump();
  EXPECT_NE(job["error"].get<std::string>().find("1 of 1 files failed"), std::string::npos);
}

// 60 connections that each send a request line and then one header line now and then, never
// ending the head: the server stays reachable for a normal request and closes them all.
TEST(WebHardening, ClientsTricklingHeadersDoNotLockOthersOut) {
  const fs::path root = make_root("web-slow-clients");
  ServeProcess serve(root);
  const std::string host = "Host: 127.0.0.1:" + std::to_string(serve.port()) + "\r\n";
  std::vector<int> slow;
  for (int i = 0; i < 60; ++i) {
    const int fd = connect_to(serve.port());
    ASSERT_GE(fd, 0);
    const std::string start = "GET /api/jobs HTTP/1.1\r\n" + host;
    send(fd, start.data(), start.size(), MSG_NOSIGNAL);
    slow.push_back(fd);
  }
  std::vector<bool> closed(slow.size(), false);
  auto trickle = [&] {
    for (size_t i = 0; i < slow.size(); ++i) {
      if (closed[i]) continue;
      pollfd p{slow[i], POLLIN, 0};
      char byte;
      if (poll(&p, 1, 0) > 0 && recv(slow[i], &byte, 1, MSG_DONTWAIT) <= 0) {
        closed[i] = true;
        continue;
      }
      const std::string line = "X-Slow-" + std::to_string(i) + ": 1\r\n";
      if (send(slow[i], line.data(), line.size(), MSG_NOSIGNAL) < 0) closed[i] = true;
    }
  };
  // Meanwhile normal requests, each answered well within a generous bound.
  const auto started = Clock::now();
  for (int i = 0; i < 10; ++i) {
    trickle();
    httplib::Client client("127.0.0.1", serve.port());
    client.set_connection_timeout(5, 0);
    client.set_read_timeout(5, 0);
    const auto before = Clock::now();
    auto res = client.Get("/api/jobs");
    ASSERT_EQ(status_of(res), 200) << "request " << i << " while 60 clients trickle";
    std::printf("normal request %d while 60 clients trickle: %.1f ms\n", i,
                std::chrono::duration<double, std::milli>(Clock::now() - before).count());
    std::this_thread::sleep_for(300ms);
  }
  // The server closes every trickling connection: past the per-client bound at once, the
  // rest when their head has taken 10 s.
  while (Clock::now() - started < 25s &&
         std::count(closed.begin(), closed.end(), true) < int(slow.size())) {
    trickle();
    std::this_thread::sleep_for(500ms);
  }
  EXPECT_EQ(std::count(closed.begin(), closed.end(), true), int(slow.size()));
  for (int fd : slow) close(fd);
  EXPECT_EQ(status_of(serve.client().Get("/api/jobs")), 200);
}

TEST(WebHardening, JobsSurviveARestartAndAKilledJobIsOfferedForResume) {
  const fs::path root = make_root("web-restart");
  make_long_clip(root / "long.mp4");
  const fs::path state = root.parent_path() / "state";
  json first_stats;
  {
    ServeProcess serve(root, {}, state);
    auto res = serve.post_json("/api/jobs", {{"input", "clip.mp4"}, {"model", "lanczos"}});
    ASSERT_EQ(status_of(res), 201);
    json done = serve.wait_job(1, job_ended, 60s);
    ASSERT_EQ(done["state"], "done") << done.dump();
    first_stats = done["stats"];
    ASSERT_EQ(status_of(serve.post_json("/api/jobs", kLongJob)), 201);
    ASSERT_EQ(
        status_of(serve.post_json(
            "/api/jobs", {{"input", "clip.mp4"}, {"model", "lanczos"}, {"output", "later.mp4"}})),
        201);
    json running = serve.wait_job(2, some_segments_done, 120s);
    ASSERT_EQ(running["state"], "running") << running.dump();
    // Wait for a finished segment, so that there is a partial run to resume.
    const fs::path manifest = root / "long_x2.mp4.upframe-partial" / "manifest.json";
    for (int i = 0;
         i < 600 && !(fs::exists(manifest) && json::parse(read_file(manifest), nullptr, false)
                                                      .value("segments", json::array())
                                                      .size() > 0);
         ++i)
      std::this_thread::sleep_for(100ms);
    EXPECT_TRUE(fs::exists(serve.job_store()));
    // Killed: no chance to record anything more.
    EXPECT_EQ(serve.stop(SIGKILL), 128 + SIGKILL);
  }
  ServeProcess serve(root, {}, state);
  EXPECT_NE(serve.log().find("jobs kept in " + (state / "upframe" / "jobs.sqlite").string() +
                             ": 3 (1 queued, 1 interrupted)"),
            std::string::npos)
      << serve.log();
  json one = serve.get_json("/api/jobs/1");
  EXPECT_EQ(one["state"], "done");
  EXPECT_EQ(one["stats"], first_stats);
  EXPECT_NE(log_text(one).find("job 1: done"), std::string::npos) << one.dump();
  json two = serve.get_json("/api/jobs/2");
  EXPECT_EQ(two["state"], "cancelled") << two.dump();
  EXPECT_EQ(two["error"], "the server stopped while this job ran");
  EXPECT_TRUE(two["partial_kept"].get<bool>()) << two.dump();
  // The queued one runs in the new server.
  json three = serve.wait_job(3, job_ended, 60s);
  EXPECT_EQ(three["state"], "done") << three.dump();
  EXPECT_TRUE(fs::exists(root / "later.mp4"));
  // New jobs continue the numbering; Resume (the request again with resume) continues the
  // killed job's partial run.
  json resume = two["request"];
  resume.erase("output_path");
  resume["resume"] = true;
  auto res = serve.post_json("/api/jobs", resume);
  ASSERT_EQ(status_of(res), 201) << res->body;
  EXPECT_EQ(json::parse(res->body)["id"], 4);
  json four = serve.wait_job(4, some_segments_done, 120s);
  EXPECT_NE(log_text(four).find("resuming the partial run"), std::string::npos) << log_text(four);
  serve.post_json("/api/jobs/4/cancel", json::object());
  serve.wait_job(4, job_ended, 60s);
}

TEST(WebHardening, ASecondServerOnTheSameJobFileKeepsItsJobsInMemory) {
  const fs::path root = make_root("web-store-taken");
  ServeProcess first(root);
  ServeProcess second(root);  // the same state folder (ROOT/../state)
  EXPECT_NE(second.log().find(first.job_store().string() +
                              ": another upframe serve is using it: jobs are kept in memory only"),
            std::string::npos)
      << second.log();
  ASSERT_EQ(status_of(second.post_json("/api/jobs", {{"input", "clip.mp4"}, {"model", "lanczos"}})),
            201);
  EXPECT_EQ(second.wait_job(1, job_ended, 60s)["state"], "done");
  EXPECT_EQ(first.get_json("/api/jobs")["jobs"].size(), 0u);
}

}  // namespace
}  // namespace upframe::test
