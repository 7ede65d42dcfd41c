// The HTTP API of `upframe serve` (docs/WEB.md), through a real server process: the checks
// every request goes through, and jobs that run, stop and resume.
#include <gtest/gtest.h>
#include <sys/stat.h>

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

// root/ (served) with clip.mp4 on twos (duplicates), and outside/ beside it with a clip too.
struct Folders {
  fs::path base, root, outside;
};

Folders make_folders(const std::string& name) {
  Folders f;
  f.base = scratch_dir(name);
  f.root = f.base / "root";
  f.outside = f.base / "outside";
  fs::create_directories(f.root);
  fs::create_directories(f.outside);
  synth::ClipSpec spec{64, 36, 24};
  synth::encode_clip(f.root / "clip.mp4", synth::on_twos_clip(spec));
  fs::copy_file(f.root / "clip.mp4", f.outside / "secret.mp4");
  return f;
}

TEST(WebApi, PathsOutsideTheRootsAreRefused) {
  Folders f = make_folders("web-traversal");
  fs::create_directory_symlink(f.outside, f.root / "link-out");
  ServeProcess serve(f.root);
  const json base = {{"model", "lanczos"}};
  for (const std::string& input :
       {std::string("../outside/secret.mp4"), (f.outside / "secret.mp4").string(),
        std::string("link-out/secret.mp4"), (f.root / "sub/../../outside/secret.mp4").string()}) {
    json body = base;
    body["input"] = input;
    auto res = serve.post_json("/api/jobs", body);
    EXPECT_EQ(status_of(res), 403) << input;
    EXPECT_NE(error_of(res).find("outside the allowed folders"), std::string::npos) << input;
  }
  // An output that leads out, directly or through the symlink.
  for (const std::string& output :
       {std::string("../outside/x.mp4"), std::string("link-out/x.mp4")}) {
    auto res = serve.post_json("/api/jobs",
                               {{"input", "clip.mp4"}, {"model", "lanczos"}, {"output", output}});
    EXPECT_EQ(status_of(res), 403) << output;
  }
  EXPECT_EQ(status_of(serve.client().Get("/api/files?path=..")), 403);
  EXPECT_EQ(status_of(serve.client().Get("/api/files?path=link-out")), 403);
  EXPECT_EQ(status_of(serve.post_json("/api/preview",
                                      {{"input", "link-out/secret.mp4"}, {"original", true}})),
            403);
  EXPECT_EQ(serve.get_json("/api/jobs")["jobs"].size(), 0u);
  EXPECT_FALSE(fs::exists(f.outside / "x.mp4"));
  // Inside the root the same listing works.
  json listing = serve.get_json("/api/files");
  ASSERT_EQ(listing["entries"].size(), 2u);  // clip.mp4 and the link (listed, not followed)
}

TEST(WebApi, StateChangingRequestsNeedTheToken) {
  Folders f = make_folders("web-token");
  ServeProcess serve(f.root);
  ASSERT_EQ(serve.token().size(), 32u);
  const std::string body = json{{"input", "clip.mp4"}, {"model", "lanczos"}}.dump();
  auto missing = serve.client().Post("/api/jobs", body, "application/json");
  EXPECT_EQ(status_of(missing), 403);
  EXPECT_NE(error_of(missing).find("missing token"), std::string::npos);
  auto wrong = serve.client().Post("/api/jobs", {{"X-Upframe-Token", std::string(32, 'a')}}, body,
                                   "application/json");
  EXPECT_EQ(status_of(wrong), 403);
  EXPECT_EQ(error_of(wrong), "wrong token");
  EXPECT_EQ(status_of(serve.client().Post("/api/jobs/1/cancel", "", "application/json")), 403);
  // Another site's name for 127.0.0.1 (DNS rebinding) is refused even with the token.
  auto rebound = serve.client().Post("/api/jobs",
                                     {{"X-Upframe-Token", serve.token()}, {"Host", "evil.example"}},
                                     body, "application/json");
  EXPECT_EQ(status_of(rebound), 403);
  EXPECT_EQ(serve.get_json("/api/jobs")["jobs"].size(), 0u);
  EXPECT_EQ(status_of(serve.post_json("/api/jobs", json::parse(body))), 201);
}

TEST(WebApi, GivenTokenIsNeededByEveryRequest) {
  Folders f = make_folders("web-given-token");
  const std::string token = "a-secret-token-0123456789";
  ServeProcess serve(f.root, {"--token", token});
  EXPECT_NE(serve.url().find("?token=" + token), std::string::npos);
  EXPECT_EQ(status_of(serve.client().Get("/api/jobs")), 403);
  EXPECT_EQ(status_of(serve.client().Get("/")), 403);
  EXPECT_EQ(status_of(serve.client().Get("/api/jobs?token=" + token)), 200);
  EXPECT_EQ(status_of(serve.client().Get("/api/jobs", {{"X-Upframe-Token", token}})), 200);
}

TEST(WebApi, AnotherAddressThanLoopbackNeedsAToken) {
  CommandResult r = run_cli("serve --host 0.0.0.0 --port 0");
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_NE(r.stderr_text.find(
                "upframe: error: 0.0.0.0: serving another address than loopback needs --token"),
            std::string::npos)
      << r.stderr_text;
  // A port already taken is refused (cpp-httplib's default SO_REUSEPORT would share it).
  Folders f = make_folders("web-port-taken");
  ServeProcess first(f.root);
  r = run_cli("serve --port " + std::to_string(first.port()) + " --root " + quote(f.root.string()));
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_NE(
      r.stderr_text.find("127.0.0.1:" + std::to_string(first.port()) + ": cannot listen there"),
      std::string::npos)
      << r.stderr_text;
  r = run_cli("serve --port 0 --root /nonexistent-folder");
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_NE(r.stderr_text.find("/nonexistent-folder: --root is not an existing folder"),
            std::string::npos);
}

TEST(WebApi, BadRequestsGetAJsonErrorNamingTheProblem) {
  Folders f = make_folders("web-bad-json");
  ServeProcess serve(f.root);
  auto post_text = [&](const std::string& text) {
    return serve.client().Post("/api/jobs", {{"X-Upframe-Token", serve.token()}}, text,
                               "application/json");
  };
  auto res = post_text("{\"input\": ");
  EXPECT_EQ(status_of(res), 400);
  EXPECT_EQ(error_of(res).rfind("bad JSON", 0), 0u) << error_of(res);
  EXPECT_EQ(error_of(post_text("[1, 2]")), "bad JSON: expected an object");
  res = serve.post_json("/api/jobs", {{"model", "lanczos"}});
  EXPECT_EQ(status_of(res), 400);
  EXPECT_NE(error_of(res).find("'input' is missing"), std::string::npos);
  res = serve.post_json("/api/jobs", {{"input", "clip.mp4"}, {"colour", "red"}});
  EXPECT_EQ(error_of(res), "unknown key 'colour'");
  res = serve.post_json("/api/jobs", {{"input", "clip.mp4"}, {"scale", 0}});
  EXPECT_EQ(status_of(res), 400);
  EXPECT_NE(error_of(res).find("scale"), std::string::npos) << error_of(res);
  res = serve.post_json("/api/jobs", {{"input", "clip.mp4"}, {"stats", "/tmp/x.json"}});
  EXPECT_EQ(error_of(res), "'stats' cannot be set from the web UI");
  res = serve.post_json("/api/jobs", {{"input", "missing.mp4"}});
  EXPECT_EQ(status_of(res), 404);
  res = serve.post_json("/api/jobs", {{"input", "clip.mp4"}, {"model", "no-such-model"}});
  EXPECT_EQ(status_of(res), 400);
  EXPECT_EQ(serve.get_json("/api/jobs")["jobs"].size(), 0u);
  // An unknown endpoint under /api answers JSON too.
  res = serve.client().Get("/api/nothing");
  EXPECT_EQ(status_of(res), 404);
  EXPECT_EQ(error_of(res), "GET /api/nothing: no such endpoint");
}

TEST(WebApi, UnknownJob) {
  Folders f = make_folders("web-unknown-job");
  ServeProcess serve(f.root);
  auto res = serve.client().Get("/api/jobs/42");
  EXPECT_EQ(status_of(res), 404);
  EXPECT_EQ(error_of(res), "no job 42");
  EXPECT_EQ(status_of(serve.post_json("/api/jobs/42/cancel", json::object())), 404);
  EXPECT_EQ(status_of(serve.client().Get("/api/jobs/42/events")), 404);
}

TEST(WebApi, AnExistingOutputIsRefusedUnlessOverwriteIsAsked) {
  Folders f = make_folders("web-existing");
  std::ofstream(f.root / "taken.mp4") << "not mine";
  ServeProcess serve(f.root);
  const json body = {{"input", "clip.mp4"}, {"model", "lanczos"}, {"output", "taken.mp4"}};
  auto res = serve.post_json("/api/jobs", body);
  EXPECT_EQ(status_of(res), 409);
  EXPECT_NE(error_of(res).find("output exists"), std::string::npos);
  EXPECT_EQ(read_file(f.root / "taken.mp4"), "not mine");
  json overwrite = body;
  overwrite["overwrite"] = true;
  res = serve.post_json("/api/jobs", overwrite);
  ASSERT_EQ(status_of(res), 201) << res->body;
  json job = serve.wait_job(json::parse(res->body)["id"], job_ended, 60s);
  EXPECT_EQ(job["state"], "done") << job.dump();
  EXPECT_GT(fs::file_size(f.root / "taken.mp4"), 100u);
}

TEST(WebApi, UploadsAreCheckedAndLimited) {
  Folders f = make_folders("web-upload");
  ServeProcess serve(f.root, {"--max-upload-mb", "1"});
  auto upload = [&](const std::string& name, const std::string& content) {
    httplib::MultipartFormDataItems items = {{"file", content, name, "application/octet-stream"}};
    return serve.client().Post("/api/upload?dir=.", {{"X-Upframe-Token", serve.token()}}, items);
  };
  const std::string clip = read_file(f.root / "clip.mp4");
  auto res = upload("fake.mp4", "this is not a video");
  EXPECT_EQ(status_of(res), 415);
  EXPECT_EQ(error_of(res), "fake.mp4: not a readable image or video");
  res = upload("notes.txt", clip);
  EXPECT_EQ(status_of(res), 415);
  EXPECT_EQ(status_of(upload("../escape.mp4", clip)), 400);
  res = upload("big.mp4", std::string(2 << 20, 'x'));
  EXPECT_EQ(status_of(res), 413);
  EXPECT_EQ(error_of(res),
            "POST /api/upload: the body is larger than the limit (--max-upload-mb 1)");
  res = upload("new.mp4", clip);
  ASSERT_EQ(status_of(res), 201) << (res ? res->body : "");
  EXPECT_EQ(read_file(f.root / "new.mp4"), clip);
  EXPECT_EQ(status_of(upload("new.mp4", clip)), 409);
  // Nothing else was left: no rejected file, no temporary.
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(f.root)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"clip.mp4", "new.mp4"}));
  EXPECT_FALSE(fs::exists(f.base / "escape.mp4"));
}

const json kLongJob = long_job_request();

// The finished segments the manifest of the partial run names.
size_t finished_segments(const fs::path& partial) {
  json manifest = json::parse(read_file(partial / "manifest.json"));
  return manifest["segments"].size();
}

TEST(WebApi, CancelKeepsThePartialRunAndResumeContinuesIt) {
  Folders f = make_folders("web-cancel");
  make_long_clip(f.root / "long.mp4");
  const fs::path partial = f.root / "long_x2.mp4.upframe-partial";
  ServeProcess serve(f.root);
  auto res = serve.post_json("/api/jobs", kLongJob);
  ASSERT_EQ(status_of(res), 201);
  const int64_t id = json::parse(res->body)["id"];
  // A second job waits behind the first (one runs at a time); cancelling it never runs it.
  auto queued = serve.post_json("/api/jobs", {{"input", "clip.mp4"}, {"model", "lanczos"}});
  const int64_t queued_id = json::parse(queued->body)["id"];
  EXPECT_EQ(serve.get_json("/api/jobs/" + std::to_string(queued_id))["state"], "queued");
  EXPECT_EQ(status_of(serve.post_json("/api/jobs/" + std::to_string(queued_id) + "/cancel",
                                      json::object())),
            200);
  json job = serve.wait_job(id, some_segments_done, 120s);
  ASSERT_EQ(job["state"], "running") << job.dump();
  EXPECT_EQ(
      status_of(serve.post_json("/api/jobs/" + std::to_string(id) + "/cancel", json::object())),
      200);
  job = serve.wait_job(id, job_ended, 60s);
  EXPECT_EQ(job["state"], "cancelled") << job.dump();
  EXPECT_TRUE(job["partial_kept"].get<bool>());
  EXPECT_LT(job["progress"]["frames_done"].get<int>(), 1200);
  ASSERT_TRUE(fs::is_directory(partial));
  const size_t segments = finished_segments(partial);
  EXPECT_GE(segments, 1u);
  EXPECT_FALSE(fs::exists(f.root / "long_x2.mp4"));
  EXPECT_EQ(serve.get_json("/api/jobs/" + std::to_string(queued_id))["state"], "cancelled");
  EXPECT_FALSE(fs::exists(f.root / "clip_x2.mp4"));

  // Resume: the same request with resume, as the page's Resume button sends it. It starts
  // from the finished segments.
  json resume = kLongJob;
  resume["resume"] = true;
  res = serve.post_json("/api/jobs", resume);
  ASSERT_EQ(status_of(res), 201) << res->body;
  const int64_t resumed_id = json::parse(res->body)["id"];
  job = serve.wait_job(resumed_id, some_segments_done, 120s);
  EXPECT_NE(log_text(job).find("resuming the partial run at " + partial.string() + " (" +
                               std::to_string(segments) + " finished segment(s))"),
            std::string::npos)
      << log_text(job);
  serve.post_json("/api/jobs/" + std::to_string(resumed_id) + "/cancel", json::object());
  job = serve.wait_job(resumed_id, job_ended, 60s);
  if (job["state"] == "done") {  // a fast machine got there before the cancel
    EXPECT_EQ(job["stats"]["resumed_frames"].get<size_t>(), segments * 5);
  } else {
    EXPECT_EQ(job["state"], "cancelled");
    EXPECT_GE(finished_segments(partial), segments);
  }
}

TEST(WebApi, SigintStopsTheRunningJobKeepingItsPartialRun) {
  Folders f = make_folders("web-sigint");
  make_long_clip(f.root / "long.mp4");
  ServeProcess serve(f.root);
  auto res = serve.post_json("/api/jobs", kLongJob);
  ASSERT_EQ(status_of(res), 201);
  json job = serve.wait_job(json::parse(res->body)["id"], some_segments_done, 120s);
  ASSERT_EQ(job["state"], "running") << job.dump();
  // A page watching the job: its event stream ends with the job's end, not with a hang.
  std::string stream;
  std::thread watcher([&] {
    serve.client().Get("/api/jobs/1/events", [&](const char* data, size_t size) {
      stream.append(data, size);
      return true;
    });
  });
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(serve.stop(SIGINT), 130);
  watcher.join();
  EXPECT_NE(stream.find("event: end\ndata: {\"error\":\"stopped\""), std::string::npos)
      << stream.substr(stream.size() > 600 ? stream.size() - 600 : 0) << "\n"
      << serve.log();
  EXPECT_NE(serve.log().find("job 1: stopped"), std::string::npos) << serve.log();
  EXPECT_NE(serve.log().find("upframe: interrupted"), std::string::npos);
  EXPECT_GE(finished_segments(f.root / "long_x2.mp4.upframe-partial"), 1u);
  EXPECT_FALSE(fs::exists(f.root / "long_x2.mp4"));
}

TEST(WebApi, EventsStreamProgressThenTheEnd) {
  Folders f = make_folders("web-events");
  ServeProcess serve(f.root);
  auto res = serve.post_json("/api/jobs", {{"input", "clip.mp4"}, {"model", "lanczos"}});
  ASSERT_EQ(status_of(res), 201);
  std::string stream;
  auto events = serve.client().Get("/api/jobs/1/events", [&](const char* data, size_t size) {
    stream.append(data, size);
    return true;
  });
  ASSERT_TRUE(events);
  EXPECT_EQ(events->get_header_value("Content-Type"), "text/event-stream");
  EXPECT_EQ(stream.rfind("event: snapshot\n", 0), 0u) << stream.substr(0, 200);
  const size_t end = stream.find("event: end\ndata: ");
  ASSERT_NE(end, std::string::npos) << stream;
  json last = json::parse(stream.substr(end + 17, stream.find('\n', end + 17) - end - 17));
  EXPECT_EQ(last["state"], "done");
  EXPECT_EQ(last["stats"]["total_frames"], 24);
  EXPECT_NE(stream.find("\"frames_done\":24"), std::string::npos);
}

TEST(WebApi, AFolderInputRunsABatch) {
  Folders f = make_folders("web-batch");
  fs::create_directory(f.root / "in");
  fs::copy_file(f.root / "clip.mp4", f.root / "in" / "a.mp4");
  fs::copy_file(f.root / "clip.mp4", f.root / "in" / "b.mp4");
  ServeProcess serve(f.root);
  auto res = serve.post_json("/api/jobs", {{"input", "in"}, {"model", "lanczos"}});
  ASSERT_EQ(status_of(res), 201) << res->body;
  EXPECT_EQ(json::parse(res->body)["output"], (f.root / "in_x2").string());
  json job = serve.wait_job(json::parse(res->body)["id"], job_ended, 60s);
  ASSERT_EQ(job["state"], "done") << job.dump();
  EXPECT_EQ(job["stats"]["files"].size(), 2u);
  EXPECT_TRUE(fs::exists(f.root / "in_x2" / "a.mp4"));
  EXPECT_TRUE(fs::exists(f.root / "in_x2" / "b.mp4"));
  // The same folder again: its output folder exists now.
  EXPECT_EQ(status_of(serve.post_json("/api/jobs", {{"input", "in"}, {"model", "lanczos"}})), 409);
}

TEST(WebApi, PreviewGivesTheFrameAndItsUpscaleAsPng) {
  Folders f = make_folders("web-preview");
  ServeProcess serve(f.root);
  auto before =
      serve.post_json("/api/preview", {{"input", "clip.mp4"}, {"frame", 5}, {"original", true}});
  ASSERT_EQ(status_of(before), 200) << before->body;
  EXPECT_EQ(before->get_header_value("Content-Type"), "image/png");
  auto after = serve.post_json(
      "/api/preview", {{"input", "clip.mp4"}, {"frame", 5}, {"model", "realesr-animevideov3"}});
  ASSERT_EQ(status_of(after), 200) << after->body;
  auto png_size = [](const std::string& png) {  // IHDR width, height
    auto be32 = [&](size_t at) {
      return (uint32_t(uint8_t(png[at])) << 24) | (uint32_t(uint8_t(png[at + 1])) << 16) |
             (uint32_t(uint8_t(png[at + 2])) << 8) | uint32_t(uint8_t(png[at + 3]));
    };
    return std::pair<uint32_t, uint32_t>(be32(16), be32(20));
  };
  EXPECT_EQ(png_size(before->body), std::make_pair(64u, 36u));
  EXPECT_EQ(png_size(after->body), std::make_pair(128u, 72u));
  // By time: the first frame shown at or after it (frame 12 of a 24 fps clip at 0.5 s).
  auto frame12 =
      serve.post_json("/api/preview", {{"input", "clip.mp4"}, {"frame", 12}, {"original", true}});
  auto at_half =
      serve.post_json("/api/preview", {{"input", "clip.mp4"}, {"time", 0.5}, {"original", true}});
  ASSERT_EQ(status_of(at_half), 200);
  EXPECT_EQ(at_half->body, frame12->body);
  EXPECT_NE(at_half->body, before->body);
  auto past =
      serve.post_json("/api/preview", {{"input", "clip.mp4"}, {"frame", 500}, {"original", true}});
  EXPECT_EQ(status_of(past), 400);
  EXPECT_NE(error_of(past).find("past the end (24 frames)"), std::string::npos);
}

}  // namespace
}  // namespace upframe::test
