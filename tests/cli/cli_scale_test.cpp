// Distributed jobs (docs/SCALE.md): plan, run-segment, join, status and submit, run as a user
// runs them. "Equal to a one-process run" means the same decoded frames (framemd5 of every
// stream) as `upframe IN -o OUT` cutting its resumable segments at the same frames
// (--segment-frames F on an input with a keyframe every F frames): both encode each segment
// with a fresh encoder and start the duplicate detector afresh at each segment's first frame.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "support/test_support.hpp"

namespace upframe::test {
namespace {

using namespace std::chrono_literals;

// `frames` frames drawn on threes (each picture held 3 frames, exact through lossless x264)
// with a keyframe every `keyint` frames and an audio track.
fs::path make_clip(const fs::path& dir, const std::string& size, int frames, int keyint) {
  fs::path in = dir / "in.mkv";
  auto r = run_command(
      "ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=" + size +
      ":rate=8 -f lavfi -i sine=frequency=440 -vf fps=24 -frames:v " + std::to_string(frames) +
      " -c:v libx264 -qp 0 -pix_fmt yuv420p -x264-params keyint=" + std::to_string(keyint) +
      ":min-keyint=" + std::to_string(keyint) + ":scenecut=0 -c:a aac -shortest " +
      quote(in.string()));
  EXPECT_EQ(r.exit_status, 0) << r.stderr_text;
  return in;
}

const std::string kOptions = " --model lanczos --quiet";

// The one-process run cutting at the same frames (its stats in OUT.json).
fs::path one_process_run(const fs::path& in, const fs::path& dir, int segment_frames) {
  const fs::path out = dir / ("reference_" + std::to_string(segment_frames) + ".mkv");
  auto r =
      run_cli(quote(in.string()) + " -o " + quote(out.string()) + kOptions + " --segment-frames " +
              std::to_string(segment_frames) + " --stats " + quote(out.string() + ".json"));
  EXPECT_EQ(r.exit_status, 0) << r.stderr_text;
  return out;
}

int64_t unique_frames_of(const fs::path& run) {
  return nlohmann::json::parse(read_file(run.string() + ".json"))["unique_frames"].get<int64_t>();
}

fs::path plan(const fs::path& in, const fs::path& out, int segments) {
  auto r = run_cli("plan " + quote(in.string()) + " -o " + quote(out.string()) + kOptions +
                   " --segments " + std::to_string(segments));
  EXPECT_EQ(r.exit_status, 0) << r.stderr_text;
  std::string path = r.stdout_text;
  while (!path.empty() && path.back() == '\n') path.pop_back();
  return path;
}

nlohmann::json status_of(const fs::path& manifest) {
  auto r = run_cli("status " + quote(manifest.string()) + " --json");
  EXPECT_EQ(r.exit_status, 0) << r.stderr_text;
  return nlohmann::json::parse(r.stdout_text, nullptr, false);
}

// Starts `upframe run-segment MANIFEST --index I`, sends it `signal` once it reports progress
// (its first frame written), and returns its wait status.
int signal_segment_once_running(const fs::path& manifest, int index, int signal) {
  const std::string index_text = std::to_string(index);
  const pid_t worker = fork();
  if (worker == 0) {
    execl(cli_path().c_str(), "upframe", "run-segment", manifest.c_str(), "--index",
          index_text.c_str(), "--quiet", static_cast<char*>(nullptr));
    _exit(127);
  }
  char running[32];
  std::snprintf(running, sizeof running, "seg_%06d.running", index);
  const fs::path progress = manifest.parent_path() / "f_0000" / running;
  const auto start = std::chrono::steady_clock::now();
  while (!fs::exists(progress) && std::chrono::steady_clock::now() - start < 30s)
    std::this_thread::sleep_for(5ms);
  kill(worker, signal);
  int wait_status = 0;
  waitpid(worker, &wait_status, 0);
  return wait_status;
}

std::string one_line(const std::string& text) {
  return text.empty() || text.find('\n') == text.size() - 1 ? "" : "more than one line: " + text;
}

TEST(Scale, PlanCutsAtKeyframes) {
  const fs::path dir = scratch_dir("scale_plan");
  const fs::path in = make_clip(dir, "64x36", 40, 10);
  const fs::path manifest = plan(in, dir / "out.mkv", 4);
  EXPECT_EQ(manifest, dir / "out.mkv.upframe-job" / "manifest.json");
  const auto m = nlohmann::json::parse(read_file(manifest));
  EXPECT_EQ(m["version"], 1);
  ASSERT_EQ(m["segments"].size(), 4u);
  for (int k = 0; k < 4; ++k) {
    EXPECT_EQ(m["segments"][k]["frames"], 10) << k;
    EXPECT_EQ(m["segments"][k]["first_frame"], 10 * k) << k;
  }
  EXPECT_TRUE(m["segments"][0]["start_pts"].is_null());
  EXPECT_TRUE(m["segments"][3]["end_pts"].is_null());
  EXPECT_EQ(m["segments"][1]["end_pts"], m["segments"][2]["start_pts"]);
  const auto& file = m["files"][0];
  EXPECT_EQ(file["input"], fs::absolute(in).string());
  EXPECT_EQ(file["identity"]["size"], fs::file_size(in));
  EXPECT_EQ(file["options"]["model"], "lanczos");
  EXPECT_EQ(file["options"]["encoder"], "libx264");
  EXPECT_EQ(m["settings"]["model"], "lanczos");

  // Fewer keyframes than segments asked: one segment per keyframe.
  auto r = run_cli("plan " + quote(in.string()) + " -o " + quote((dir / "b.mkv").string()) +
                   " --model lanczos --segments 9");
  EXPECT_EQ(r.exit_status, 0) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("4 keyframe-aligned segment(s), not 9"), std::string::npos)
      << r.stderr_text;
  // --segment-seconds: 40 frames at 24 fps cut every 0.4 s (9.6 frames) at the nearest
  // keyframes: 10, 20, 30 (38.4 falls nearest to 30 again).
  r = run_cli("plan " + quote(in.string()) + " -o " + quote((dir / "c.mkv").string()) +
              " --model lanczos --segment-seconds 0.4");
  EXPECT_EQ(r.exit_status, 0) << r.stderr_text;
  const auto c = nlohmann::json::parse(read_file(dir / "c.mkv.upframe-job" / "manifest.json"));
  ASSERT_EQ(c["segments"].size(), 4u);
  for (int k = 0; k < 4; ++k) EXPECT_EQ(c["segments"][k]["first_frame"], 10 * k) << k;

  // Bad input and options: one error line, status 2, no job folder.
  r = run_cli("plan " + quote((dir / "missing.mkv").string()) + " --segments 2");
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_NE(r.stderr_text.find("upframe: error: " + (dir / "missing.mkv").string() + ":"),
            std::string::npos)
      << r.stderr_text;
  r = run_cli("plan " + quote(in.string()) + " -o " + quote((dir / "d.mkv").string()));
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_NE(r.stderr_text.find("--segments N or --segment-seconds S"), std::string::npos);
  r = run_cli("plan " + quote(in.string()) + " -o " + quote((dir / "d.mkv").string()) +
              " --segments 2 --scale 0");
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_NE(r.stderr_text.find("--scale"), std::string::npos) << r.stderr_text;
  r = run_cli("plan " + quote(in.string()) + " -o " + quote((dir / "d/").string()) +
              " --segments 2 --model lanczos");
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_NE(r.stderr_text.find("a distributed job writes video files"), std::string::npos)
      << r.stderr_text;
  EXPECT_FALSE(fs::exists(dir / "d.mkv.upframe-job"));
  // An existing job folder is kept unless -y.
  r = run_cli("plan " + quote(in.string()) + " -o " + quote((dir / "out.mkv").string()) + kOptions +
              " --segments 4");
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_NE(r.stderr_text.find("a job folder exists here"), std::string::npos);
}

// Every segment through run-segment in a plain shell loop, then join: the frames and streams
// of the one-process run; the stats say what the segment starts cost.
TEST(Scale, ShellLoopEqualsOneProcessRun) {
  const fs::path dir = scratch_dir("scale_loop");
  const fs::path in = make_clip(dir, "64x36", 40, 10);
  const fs::path reference = one_process_run(in, dir, 10);
  const fs::path out = dir / "out.mkv";
  const fs::path manifest = plan(in, out, 4);
  auto r = run_command("for i in 0 1 2 3; do " + quote(cli_path().string()) + " run-segment " +
                       quote(manifest.string()) + " --index $i --quiet || exit 1; done");
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  nlohmann::json status = status_of(manifest);
  EXPECT_EQ(status["segments_done"], 4);
  r = run_cli("status " + quote(manifest.string()));
  EXPECT_NE(r.stdout_text.find("segment 3: done, 10/10 frames\n4/4 segments done, 0 running, 0 "
                               "missing; frames 40/40"),
            std::string::npos)
      << r.stdout_text;
  EXPECT_EQ(status["frames_done"], 40);
  EXPECT_EQ(status["eta_s"], 0.0);
  r = run_cli("join " + quote(manifest.string()) + " --stats " +
              quote((dir / "stats.json").string()));
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  const auto expected = framemd5(reference), got = framemd5(out);
  EXPECT_EQ(got.size(), framemd5(in).size());  // every video and audio frame
  EXPECT_EQ(got, expected);
  const auto stats = nlohmann::json::parse(read_file(dir / "stats.json"));
  EXPECT_EQ(stats["totals"]["frames"], 40);
  EXPECT_EQ(stats["totals"]["segments"], 4);
  EXPECT_EQ(stats["totals"]["unique_frames"], unique_frames_of(reference));
  EXPECT_EQ(
      stats["totals"]["unique_frames"].get<int>() + stats["totals"]["duplicate_frames"].get<int>(),
      40);
  // What the segment starts cost: the unique frames a one-process run without them has fewer.
  const fs::path whole = one_process_run(in, dir, 1000);
  const int64_t cost = unique_frames_of(reference) - unique_frames_of(whole);
  EXPECT_GT(cost, 0);
  EXPECT_EQ(stats["totals"]["segment_start_duplicates_lost"], cost);
}

TEST(Scale, RunSegmentIsIdempotentAndChecksThePlan) {
  const fs::path dir = scratch_dir("scale_checks");
  const fs::path in = make_clip(dir, "64x36", 20, 10);
  const fs::path manifest = plan(in, dir / "out.mkv", 2);
  const fs::path job = manifest.parent_path();
  const std::string run = "run-segment " + quote(manifest.string());

  // No index: from SLURM_ARRAY_TASK_ID / JOB_COMPLETION_INDEX, else a usage error.
  auto r = run_cli(run);
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_NE(r.stderr_text.find("no segment index"), std::string::npos) << r.stderr_text;
  r = run_command("JOB_COMPLETION_INDEX=1 " + quote(cli_path().string()) + " " + run);
  EXPECT_EQ(r.exit_status, 0) << r.stderr_text;
  EXPECT_TRUE(fs::exists(job / "f_0000" / "seg_000001.upseg"));
  const auto first_time = fs::last_write_time(job / "f_0000" / "seg_000001.upseg");
  r = run_command("SLURM_ARRAY_TASK_ID=1 " + quote(cli_path().string()) + " " + run);
  EXPECT_EQ(r.exit_status, 0) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("segment 1: already finished"), std::string::npos);
  EXPECT_EQ(fs::last_write_time(job / "f_0000" / "seg_000001.upseg"), first_time);

  r = run_cli(run + " --index 2");
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_NE(r.stderr_text.find("segment index 2 is outside 0..1"), std::string::npos);

  // A second worker on a segment another one holds steps aside and writes nothing.
  {
    const int fd = open((job / "f_0000" / "seg_000000.lock").c_str(), O_RDWR | O_CREAT, 0644);
    ASSERT_GE(fd, 0);
    const pid_t holder = fork();
    if (holder == 0) {
      struct flock lock {};
      lock.l_type = F_WRLCK;
      lock.l_whence = SEEK_SET;
      fcntl(fd, F_SETLKW, &lock);
      pause();
      _exit(0);
    }
    std::this_thread::sleep_for(200ms);
    r = run_cli(run + " --index 0");
    EXPECT_EQ(r.exit_status, 0) << r.stderr_text;
    EXPECT_NE(r.stderr_text.find("another worker is running it"), std::string::npos)
        << r.stderr_text;
    EXPECT_FALSE(fs::exists(job / "f_0000" / "seg_000000.upseg"));
    EXPECT_EQ(status_of(manifest)["list"][0]["state"], "running");
    kill(holder, SIGKILL);
    waitpid(holder, nullptr, 0);
    close(fd);
    EXPECT_EQ(status_of(manifest)["list"][0]["state"], "missing");
  }

  // Other settings on the worker than in the plan, a changed input: refused, nothing written.
  auto m = nlohmann::json::parse(read_file(manifest));
  m["settings"]["crf"] = "30";
  { std::ofstream(job / "other.json") << m.dump(); }
  r = run_cli("run-segment " + quote((job / "other.json").string()) + " --index 0");
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_NE(r.stderr_text.find("crf was 18, now 30"), std::string::npos) << r.stderr_text;
  EXPECT_EQ(one_line(r.stderr_text), "");
  fs::last_write_time(in, fs::last_write_time(in) + 1s);
  r = run_cli(run + " --index 0");
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_NE(r.stderr_text.find(in.string() + ": the input changed since the plan"),
            std::string::npos)
      << r.stderr_text;
  EXPECT_FALSE(fs::exists(job / "f_0000" / "seg_000000.upseg"));
  r = run_cli("status " + quote((dir / "nothing.json").string()));
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_NE(r.stderr_text.find("not a readable upframe job manifest"), std::string::npos);
}

// Join names every missing or bad segment in one error line and writes nothing.
TEST(Scale, JoinNamesMissingAndBadSegments) {
  const fs::path dir = scratch_dir("scale_join");
  const fs::path in = make_clip(dir, "64x36", 40, 10);
  const fs::path out = dir / "out.mkv";
  const fs::path manifest = plan(in, out, 4);
  const fs::path files = manifest.parent_path() / "f_0000";
  for (int i : {0, 2, 3}) {
    auto r = run_cli("run-segment " + quote(manifest.string()) + " --index " + std::to_string(i));
    ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  }
  auto record = nlohmann::json::parse(read_file(files / "seg_000003.json"));
  record["frames"] = 9;
  std::ofstream(files / "seg_000003.json") << record.dump();
  auto r = run_cli("join " + quote(manifest.string()));
  EXPECT_EQ(r.exit_status, 1);
  EXPECT_EQ(r.stderr_text, "upframe: error: " + manifest.string() +
                               ": cannot join: segment 1 (seg_000001.upseg) missing; segment 3 "
                               "(seg_000003.upseg) holds 9 frames, the plan 10\n");
  EXPECT_FALSE(fs::exists(out));
  const auto status = status_of(manifest);
  EXPECT_EQ(status["segments_done"], 2);
  EXPECT_EQ(status["segments_missing"], 2);
  EXPECT_EQ(status["frames_done"], 20);
  EXPECT_TRUE(status["eta_s"].is_null());
}

// A manifest is input, not trust: one whose segment path points outside the job folder (an
// absolute path elsewhere, a `..` path), whose output is moved, or that is damaged (an empty
// file list, a wrong type) is refused by every command with one line naming the manifest and
// the field; nothing is written outside the job folder.
TEST(Scale, HandEditedManifestIsRefusedNamingTheField) {
  const fs::path dir = scratch_dir("scale_manifest_edits");
  const fs::path in = make_clip(dir, "64x36", 20, 10);
  const fs::path out = dir / "out.mkv";
  const fs::path manifest = plan(in, out, 2);
  const nlohmann::json planned = nlohmann::json::parse(read_file(manifest));
  const fs::path outside = dir / "elsewhere" / "x.upseg";
  fs::create_directories(outside.parent_path());
  struct Edit {
    std::string name, field;
    std::function<void(nlohmann::json&)> apply;
  };
  const std::vector<Edit> edits = {
      {"absolute path", "segments[0].path",
       [&](nlohmann::json& m) { m["segments"][0]["path"] = outside.string(); }},
      {"dot-dot path", "segments[1].path",
       [&](nlohmann::json& m) {
         m["segments"][1]["path"] =
             (manifest.parent_path() / "f_0000" / ".." / ".." / "x.upseg").string();
       }},
      {"another output", "files[0].output",
       [&](nlohmann::json& m) {
         m["files"][0]["output"] = (manifest.parent_path() / "f_0000" / "out.mkv").string();
       }},
      {"no files", "files", [&](nlohmann::json& m) { m["files"] = nlohmann::json::array(); }},
      {"wrong type", "segments[0].frames",
       [&](nlohmann::json& m) { m["segments"][0]["frames"] = "ten"; }},
      {"missing field", "files[0].input", [&](nlohmann::json& m) { m["files"][0].erase("input"); }},
  };
  for (const Edit& edit : edits) {
    SCOPED_TRACE(edit.name);
    nlohmann::json m = planned;
    edit.apply(m);
    std::ofstream(manifest) << m.dump(2);
    for (const std::string command : {"run-segment", "join", "status"}) {
      auto r = run_cli(command + " " + quote(manifest.string()) +
                       (command == "run-segment" ? " --index 0" : ""));
      EXPECT_EQ(r.exit_status, 2) << command << ": " << r.stderr_text;
      const std::string line =
          "upframe: error: " + manifest.string() + ": field " + edit.field + ": ";
      EXPECT_EQ(r.stderr_text.rfind(line, 0), 0u) << command << ": " << r.stderr_text;
      EXPECT_EQ(std::count(r.stderr_text.begin(), r.stderr_text.end(), '\n'), 1)
          << command << ": " << r.stderr_text;
    }
  }
  EXPECT_FALSE(fs::exists(outside));
  EXPECT_FALSE(fs::exists(dir / "x.upseg"));
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(manifest.parent_path() / "f_0000" / "out.mkv"));
}

// A flipped byte in a finished segment: the join refuses with one line naming it (nothing at
// the output), run-segment makes it again, and the join then gives the one-process result.
TEST(Scale, FlippedByteInASegmentIsNamedAndMadeAgain) {
  const fs::path dir = scratch_dir("scale_flipped");
  const fs::path in = make_clip(dir, "64x36", 20, 10);
  const fs::path out = dir / "out.mkv";
  const fs::path manifest = plan(in, out, 2);
  for (int i : {0, 1}) {
    auto r = run_cli("run-segment " + quote(manifest.string()) + " --index " + std::to_string(i));
    ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  }
  const fs::path segment = manifest.parent_path() / "f_0000" / "seg_000001.upseg";
  {
    std::fstream f(segment, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-100, std::ios::end);
    char c = 0;
    f.get(c);
    f.seekp(-100, std::ios::end);
    f.put(char(c ^ 0x01));
  }
  auto r = run_cli("join " + quote(manifest.string()));
  EXPECT_EQ(r.exit_status, 1);
  EXPECT_EQ(r.stderr_text, "upframe: error: " + manifest.string() +
                               ": cannot join: segment 1 (seg_000001.upseg) damaged: checksum "
                               "mismatch (the file changed after it was written)\n");
  EXPECT_FALSE(fs::exists(out));
  r = run_cli("run-segment " + quote(manifest.string()) + " --index 1");
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  EXPECT_EQ(r.stderr_text.find("already finished"), std::string::npos) << r.stderr_text;
  r = run_cli("join " + quote(manifest.string()));
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  EXPECT_EQ(framemd5(out), framemd5(one_process_run(in, dir, 10)));
}

// A folder input plans every video in it (an image is left to a plain run); each joined output
// equals its one-process run.
TEST(Scale, FolderInputPlansEveryVideo) {
  const fs::path dir = scratch_dir("scale_folder");
  const fs::path videos = dir / "videos";
  fs::create_directories(videos / "a");
  fs::rename(make_clip(dir, "64x36", 20, 10), videos / "a" / "one.mkv");
  fs::rename(make_clip(dir, "48x32", 20, 10), videos / "two.mkv");
  auto r = run_command("ffmpeg -v error -f lavfi -i testsrc2=size=32x32 -frames:v 1 " +
                       quote((videos / "still.png").string()));
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  r = run_cli("plan " + quote(videos.string()) + " --recursive --segments 2" + kOptions);
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  const fs::path manifest = dir / "videos_x2.upframe-job" / "manifest.json";
  const auto m = nlohmann::json::parse(read_file(manifest));
  ASSERT_EQ(m["files"].size(), 2u);
  ASSERT_EQ(m["segments"].size(), 4u);
  r = run_command("for i in 0 1 2 3; do " + quote(cli_path().string()) + " run-segment " +
                  quote(manifest.string()) + " --index $i --quiet || exit 1; done");
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  r = run_cli("join " + quote(manifest.string()) + " --quiet");
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  EXPECT_FALSE(fs::exists(dir / "videos_x2" / "still.png"));
  for (const fs::path name : {"a/one.mkv", "two.mkv"}) {
    const fs::path reference = dir / ("ref_" + name.filename().string());
    r = run_cli(quote((videos / name).string()) + " -o " + quote(reference.string()) + kOptions +
                " --segment-frames 10");
    ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
    EXPECT_EQ(framemd5(dir / "videos_x2" / name), framemd5(reference)) << name;
  }
}

// SIGTERM stops a segment within a frame: status 143, nothing of it left, and it is missing
// (not running) until run again.
TEST(Scale, InterruptedSegmentLeavesNothing) {
  const fs::path dir = scratch_dir("scale_sigterm");
  const fs::path in = make_clip(dir, "640x360", 48, 24);
  const fs::path manifest = plan(in, dir / "out.mkv", 2);
  const fs::path files = manifest.parent_path() / "f_0000";
  const int wait_status = signal_segment_once_running(manifest, 0, SIGTERM);
  ASSERT_TRUE(WIFEXITED(wait_status));
  EXPECT_EQ(WEXITSTATUS(wait_status), 143);
  std::vector<std::string> left;
  for (const auto& entry : fs::directory_iterator(files))
    if (entry.path().filename() != "seg_000000.lock") left.push_back(entry.path().string());
  EXPECT_TRUE(left.empty()) << left.front();
  EXPECT_EQ(status_of(manifest)["list"][0]["state"], "missing");
}

TEST(Scale, KubernetesManifestIsAnIndexedJob) {
  const fs::path dir = scratch_dir("scale_k8s");
  const fs::path in = make_clip(dir, "64x36", 40, 10);
  const fs::path manifest = plan(in, dir / "out.mkv", 4);
  auto r = run_cli("submit " + quote(manifest.string()) +
                   " --k8s --image registry.example/upframe:1 --claim media --gpus 1");
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  const fs::path yaml = manifest.parent_path() / "k8s" / "job.yaml";
  ASSERT_TRUE(fs::exists(yaml));
  // The fields an Indexed Job and its join need, read by a YAML parser (python3-yaml, Debian).
  const std::string check = R"(
import sys, yaml
docs = list(yaml.safe_load_all(open(sys.argv[1])))
assert len(docs) == 2, docs
seg, join = docs
for d in docs:
    assert d["apiVersion"] == "batch/v1" and d["kind"] == "Job", d
    pod = d["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    c = pod["containers"][0]
    assert c["image"] == "registry.example/upframe:1"
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols["shared"]["persistentVolumeClaim"]["claimName"] == "media"
    assert sys.argv[3].startswith(mounts["shared"]), (mounts, sys.argv[3])
assert seg["spec"]["completionMode"] == "Indexed"
assert seg["spec"]["completions"] == 4 and seg["spec"]["parallelism"] == 4
assert seg["spec"]["template"]["spec"]["containers"][0]["command"] == ["upframe", "run-segment", sys.argv[2]]
assert seg["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
assert join["spec"]["template"]["spec"]["containers"][0]["command"][:4] == ["upframe", "join", sys.argv[2], "--wait"]
print("ok")
)";
  { std::ofstream(dir / "check.py") << check; }
  r = run_command("/usr/bin/python3 " + quote((dir / "check.py").string()) + " " +
                  quote(yaml.string()) + " " + quote(fs::absolute(manifest).string()) + " " +
                  quote(fs::absolute(in).string()));
  EXPECT_EQ(r.exit_status, 0) << r.stdout_text << r.stderr_text;
  EXPECT_EQ(r.stdout_text, "ok\n");

  // --slurm --print: the scripts on stdout, nothing submitted (no cluster here: sbatch would
  // fail).
  r = run_command("SLURM_CONF=/nonexistent " + quote(cli_path().string()) + " submit " +
                  quote(manifest.string()) +
                  " --slurm --print --gres gpu:1 --max-running 2 --sbatch=--account=A");
  EXPECT_EQ(r.exit_status, 0) << r.stderr_text;
  for (const std::string& line : std::vector<std::string>{
           "#SBATCH --array=0-3%2\n", "#SBATCH --gres=gpu:1\n", "#SBATCH --account=A\n",
           " run-segment " + quote(fs::absolute(manifest).string()) + "\n",
           " join " + quote(fs::absolute(manifest).string())})
    EXPECT_NE(r.stdout_text.find(line), std::string::npos) << line << r.stdout_text;
}

// A real one-node Slurm cluster (slurmctld, slurmd and munged on 127.0.0.1, started and stopped
// here): a segment killed with SIGKILL, then the 4-segment job submitted with
// `upframe submit --slurm` (the array re-runs the killed segment, the join runs afterok):
// the frames of the one-process run. Then a missing segment at join is a clear error.
TEST(Scale, SlurmJobArrayEqualsOneProcessRun) {
  const fs::path dir = scratch_dir("scale_slurm");
  const fs::path cluster = dir / "cluster";
  const std::string script = (source_dir() / "tests/support/slurm_cluster.sh").string();
  auto up = run_command(quote(script) + " start " + quote(cluster.string()));
  struct Stop {
    std::string command;
    ~Stop() { run_command(command); }
  } stop{quote(script) + " stop " + quote(cluster.string())};
  if (up.exit_status == 77) GTEST_SKIP() << up.stdout_text;
  ASSERT_EQ(up.exit_status, 0) << up.stdout_text << up.stderr_text;
  const std::string env = "SLURM_CONF=" + quote((cluster / "slurm.conf").string()) + " ";

  // 640x360 x2, so a segment takes long enough to be killed part way.
  const fs::path in = make_clip(dir, "640x360", 96, 24);
  const fs::path reference = one_process_run(in, dir, 24);
  const fs::path out = dir / "out.mkv";
  const fs::path manifest = plan(in, out, 4);
  const fs::path files = manifest.parent_path() / "f_0000";

  const int wait_status = signal_segment_once_running(manifest, 1, SIGKILL);
  ASSERT_TRUE(WIFSIGNALED(wait_status)) << "the segment finished before it could be killed";
  EXPECT_FALSE(fs::exists(files / "seg_000001.upseg"));
  EXPECT_EQ(status_of(manifest)["list"][1]["state"], "missing");

  auto r = run_command(env + quote(cli_path().string()) + " submit " + quote(manifest.string()) +
                       " --slurm --partition debug");
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("(afterok)"), std::string::npos) << r.stderr_text;
  std::string array_id = r.stdout_text.substr(0, r.stdout_text.find(' '));
  std::string join_id = r.stdout_text.substr(r.stdout_text.find(' ') + 1);
  join_id.erase(join_id.find_last_not_of("\n") + 1);
  const std::string script_text = read_file(manifest.parent_path() / "slurm" / "segments.sbatch");
  EXPECT_NE(script_text.find("#SBATCH --array=0-3"), std::string::npos) << script_text;
  EXPECT_NE(script_text.find("#SBATCH --partition=debug"), std::string::npos);
  // The join job waits on the array; both leave the queue when done.
  auto show = run_command(env + "scontrol show job " + join_id);
  EXPECT_NE(show.stdout_text.find("afterok:" + array_id), std::string::npos) << show.stdout_text;
  for (auto begin = std::chrono::steady_clock::now();
       std::chrono::steady_clock::now() - begin < 90s && !fs::exists(out);)
    std::this_thread::sleep_for(200ms);
  auto queue = run_command(env + "squeue -h");
  ASSERT_TRUE(fs::exists(out)) << queue.stdout_text
                               << read_file(manifest.parent_path() / "logs" / "join.log");
  for (auto begin = std::chrono::steady_clock::now();
       std::chrono::steady_clock::now() - begin < 10s &&
       !run_command(env + "squeue -h").stdout_text.empty();)
    std::this_thread::sleep_for(200ms);
  EXPECT_EQ(framemd5(out), framemd5(reference));
  const auto stats = nlohmann::json::parse(read_file(manifest.parent_path() / "stats.json"));
  EXPECT_EQ(stats["totals"]["frames"], 96);
  for (int k = 0; k < 4; ++k)
    EXPECT_NE(read_file(manifest.parent_path() / "logs" / ("segment_" + std::to_string(k) + ".log"))
                  .find("segment " + std::to_string(k) + ": done"),
              std::string::npos)
        << k;

  // A segment lost before the join: the join job fails with one line naming it.
  fs::remove(out);
  fs::remove(files / "seg_000002.upseg");
  r = run_cli("join " + quote(manifest.string()));
  EXPECT_EQ(r.exit_status, 1);
  EXPECT_EQ(r.stderr_text, "upframe: error: " + manifest.string() +
                               ": cannot join: segment 2 (seg_000002.upseg) missing\n");
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
}  // namespace upframe::test
