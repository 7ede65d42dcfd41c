// Interruption and resume (docs/INTERFACE.md, "Resume and atomic output"): real runs of the
// program killed (SIGKILL, SIGINT, SIGTERM) part way, then resumed, give the same frames,
// timestamps and streams as an uninterrupted run. Lossless outputs (ffv1, PNG) make the
// comparison exact; --segment-frames 10 keeps segments small so a kill lands mid-way.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <vector>

#include "support/test_support.hpp"

namespace upframe::test {
namespace {

using namespace std::chrono_literals;

// 120 frames of 320x240 drawn "on twos" (every picture shown twice, kept exact by lossless
// x264) with a sine audio track: duplicates inside and across segment boundaries.
fs::path make_input(const fs::path& dir, int seconds = 5) {
  fs::path in = dir / "in.mp4";
  const std::string duration = std::to_string(seconds);
  auto r = run_command(
      "ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=320x240:rate=12:duration=" +
      duration + " -f lavfi -i sine=frequency=440:duration=" + duration +
      " -vf fps=24 -c:v libx264 -qp 0 -pix_fmt yuv420p -c:a aac -shortest " + quote(in.string()));
  EXPECT_EQ(r.exit_status, 0) << r.stderr_text;
  return in;
}

std::string frame_name(int number) {
  char name[32];
  std::snprintf(name, sizeof name, "%08d.png", number);
  return name;
}

const std::vector<std::string> kVideoArgs = {"--model", "lanczos",          "--encoder",
                                             "ffv1",    "--segment-frames", "10"};
const std::vector<std::string> kFramesArgs = {"--model", "lanczos", "--format", "png"};

std::string join_args(const std::vector<std::string>& args) {
  std::string out;
  for (const std::string& a : args) out.append(" ").append(quote(a));
  return out;
}

CommandResult run_upframe(const fs::path& in, const fs::path& out,
                          const std::vector<std::string>& args, const std::string& extra = "") {
  return run_cli(quote(in.string()) + " -o " + quote(out.string()) + join_args(args) + " " + extra);
}

// Starts the program without waiting for it: --quiet, or its stderr into `log` when given.
pid_t spawn_upframe(const fs::path& in, const fs::path& out, const std::vector<std::string>& args,
                    const fs::path& log = {}) {
  std::vector<std::string> argv_text = {"upframe", in.string(), "-o", out.string()};
  if (log.empty()) argv_text.push_back("--quiet");
  argv_text.insert(argv_text.end(), args.begin(), args.end());
  pid_t pid = fork();
  if (pid == 0) {
    if (!log.empty()) dup2(open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), 2);
    std::vector<char*> argv;
    for (std::string& a : argv_text) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(cli_path().c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

// Waits (up to 60 s) until `ready` holds while the program still runs; false if it ended.
bool wait_while_running(pid_t pid, const std::function<bool()>& ready) {
  for (auto start = std::chrono::steady_clock::now();
       std::chrono::steady_clock::now() - start < 60s;) {
    if (ready()) return waitpid(pid, nullptr, WNOHANG) == 0;
    if (waitpid(pid, nullptr, WNOHANG) == pid) return false;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

// Finished video segments listed in the manifest of a partial run.
size_t manifest_segments(const fs::path& partial) {
  try {
    auto manifest = nlohmann::json::parse(read_file(partial / "manifest.json"));
    return manifest["segments"].size();
  } catch (const std::exception&) {
    return 0;
  }
}

// The exit status of `pid` after `signal` (128 + signal when it died of it).
int stop_with(pid_t pid, int signal) {
  kill(pid, signal);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

size_t count_stream_lines(const std::vector<std::string>& lines, const std::string& stream) {
  size_t n = 0;
  for (const std::string& l : lines) n += l.rfind(stream + ",", 0) == 0;
  return n;
}

nlohmann::json stats_of(const fs::path& file) { return nlohmann::json::parse(read_file(file)); }

fs::path pipeline_partial(const fs::path& out) {
  fs::path p = out;
  p += ".upframe-partial";
  return p;
}

// Only the final output and the partial folder: no temporary files beside them.
void expect_no_temporaries(const fs::path& dir) {
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find("upframe-tmp"), std::string::npos) << e.path();
}

// (1) and (5): SIGKILL after a segment is finished, then --resume: the same frames, pts and
// audio as an uninterrupted run, only the unfinished segments redone, and the stats say how
// many frames came from the partial run. Before that, a run without --resume and one with
// other options are refused and change nothing.
TEST(CliResume, KilledVideoRunResumesToTheSameFile) {
  auto dir = scratch_dir("cli-resume-kill");
  auto in = make_input(dir);
  auto reference = dir / "reference.mkv";
  auto r = run_upframe(in, reference, kVideoArgs, "--stats " + quote((dir / "ref.json").string()));
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;

  auto out = dir / "out.mkv";
  auto partial = dir / "out.mkv.upframe-partial";
  pid_t pid = spawn_upframe(in, out, kVideoArgs);
  ASSERT_TRUE(wait_while_running(pid, [&] { return manifest_segments(partial) >= 1; }))
      << "the run ended before a segment was finished";
  EXPECT_EQ(stop_with(pid, SIGKILL), 128 + SIGKILL);
  ASSERT_FALSE(fs::exists(out));
  const size_t finished = manifest_segments(partial);
  ASSERT_GE(finished, 1u);
  ASSERT_LT(finished, 12u);
  const std::string manifest_before = read_file(partial / "manifest.json");

  // Without --resume: refused, nothing touched.
  r = run_upframe(in, out, kVideoArgs);
  EXPECT_EQ(r.exit_status, 2) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("a partial run exists"), std::string::npos) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find(partial.string()), std::string::npos) << r.stderr_text;
  // --resume with another option: refused, naming the option; nothing touched.
  r = run_upframe(in, out, kVideoArgs, "--resume --hash-threshold 3");
  EXPECT_EQ(r.exit_status, 2) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("hash_threshold was 0, now 3"), std::string::npos) << r.stderr_text;
  EXPECT_EQ(read_file(partial / "manifest.json"), manifest_before);
  EXPECT_FALSE(fs::exists(out));

  r = run_upframe(in, out, kVideoArgs, "--resume --stats " + quote((dir / "s.json").string()));
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("resuming the partial run"), std::string::npos) << r.stderr_text;
  EXPECT_FALSE(fs::exists(partial));
  expect_no_temporaries(dir);

  auto expected = framemd5(reference), got = framemd5(out);
  EXPECT_EQ(count_stream_lines(got, "0"), 120u);  // every video frame
  EXPECT_GT(count_stream_lines(got, "1"), 0u);    // audio kept
  EXPECT_EQ(got, expected);                       // same frames, pts and durations, same audio

  auto ref = stats_of(dir / "ref.json"), stats = stats_of(dir / "s.json");
  EXPECT_EQ(ref["resumed_frames"], 0);
  EXPECT_EQ(stats["resumed_frames"].get<int64_t>(), int64_t(finished) * 10);
  EXPECT_EQ(stats["total_frames"], 120);
  EXPECT_EQ(stats["unique_frames"], ref["unique_frames"]);
  EXPECT_EQ(stats["duplicate_frames"], ref["duplicate_frames"]);
  // On twos, with the detector reset at each segment's first frame.
  EXPECT_EQ(ref["unique_frames"], 60);
}

// (2) SIGINT: status 130, the partial run kept, nothing at the final path; --resume finishes it
// with the same frames as an uninterrupted run.
TEST(CliResume, InterruptedVideoRunKeepsThePartialRunAndResumes) {
  auto dir = scratch_dir("cli-resume-sigint");
  auto in = make_input(dir);
  auto reference = dir / "reference.mkv";
  ASSERT_EQ(run_upframe(in, reference, kVideoArgs).exit_status, 0);

  auto out = dir / "out.mkv";
  auto partial = dir / "out.mkv.upframe-partial";
  pid_t pid = spawn_upframe(in, out, kVideoArgs);
  ASSERT_TRUE(wait_while_running(pid, [&] { return manifest_segments(partial) >= 1; }));
  auto sent = std::chrono::steady_clock::now();
  EXPECT_EQ(stop_with(pid, SIGINT), 130);
  // A hang guard, not a speed target: the stop is checked before each frame.
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - sent).count(), 60.0);
  EXPECT_FALSE(fs::exists(out));
  ASSERT_TRUE(fs::exists(partial / "manifest.json"));
  EXPECT_GE(manifest_segments(partial), 1u);
  // The segment being written when the signal came is gone, not left half written.
  expect_no_temporaries(partial);
  expect_no_temporaries(dir);

  auto r = run_upframe(in, out, kVideoArgs, "--resume");
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  EXPECT_FALSE(fs::exists(partial));
  EXPECT_EQ(framemd5(out), framemd5(reference));
}

// (3) A frames folder killed part way and resumed holds the same files as an uninterrupted
// run; the frames already written are not written again.
TEST(CliResume, KilledFramesFolderResumesToTheSameFrames) {
  auto dir = scratch_dir("cli-resume-frames");
  auto in = make_input(dir);
  auto reference = dir / "reference";
  ASSERT_EQ(run_upframe(in, reference, kFramesArgs).exit_status, 0);

  auto out = dir / "frames";
  auto partial = dir / "frames.upframe-partial";
  pid_t pid = spawn_upframe(in, out, kFramesArgs);
  ASSERT_TRUE(wait_while_running(pid, [&] { return fs::exists(partial / "00000012.png"); }))
      << "the run ended before 12 frames were written";
  EXPECT_EQ(stop_with(pid, SIGKILL), 128 + SIGKILL);
  ASSERT_FALSE(fs::exists(out));
  int written = 0;
  while (fs::exists(partial / frame_name(written + 1))) ++written;
  ASSERT_GE(written, 12);
  ASSERT_LT(written, 120);
  auto first_time = fs::last_write_time(partial / "00000001.png");

  auto r =
      run_upframe(in, out, kFramesArgs, "--resume --stats " + quote((dir / "s.json").string()));
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  EXPECT_FALSE(fs::exists(partial));
  EXPECT_FALSE(fs::exists(out / "manifest.json"));
  EXPECT_EQ(fs::last_write_time(out / "00000001.png"), first_time);  // not written again
  auto stats = stats_of(dir / "s.json");
  // The last file seen may have been renamed into place just before the kill; at least the
  // counted ones were kept.
  EXPECT_GE(stats["resumed_frames"].get<int>(), written);
  EXPECT_EQ(stats["total_frames"], 120);
  for (int i = 1; i <= 120; ++i) {
    const std::string name = frame_name(i);
    ASSERT_TRUE(fs::exists(out / name)) << name;
    EXPECT_EQ(read_file(out / name), read_file(reference / name)) << name;
  }
  EXPECT_FALSE(fs::exists(out / "00000121.png"));
  EXPECT_EQ(read_file(out / "timestamps.csv"), read_file(reference / "timestamps.csv"));
}

// (4) SIGTERM (status 143) leaves a partial run; resuming with other options or a changed
// input is refused naming what differs and changes nothing; -y starts over.
TEST(CliResume, ResumeRefusesOtherOptionsAndAChangedInput) {
  auto dir = scratch_dir("cli-resume-options");
  auto in = make_input(dir);
  auto out = dir / "out.mkv";
  auto partial = dir / "out.mkv.upframe-partial";
  pid_t pid = spawn_upframe(in, out, kVideoArgs);
  ASSERT_TRUE(wait_while_running(pid, [&] { return manifest_segments(partial) >= 1; }));
  EXPECT_EQ(stop_with(pid, SIGTERM), 143);
  ASSERT_TRUE(fs::exists(partial / "manifest.json"));
  const std::string manifest = read_file(partial / "manifest.json");
  std::vector<fs::path> files_before;
  for (const auto& e : fs::directory_iterator(partial)) files_before.push_back(e.path());
  std::sort(files_before.begin(), files_before.end());
  auto unchanged = [&] {
    EXPECT_EQ(read_file(partial / "manifest.json"), manifest);
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(partial)) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    EXPECT_EQ(files, files_before);
    EXPECT_FALSE(fs::exists(out));
  };

  auto r = run_upframe(
      in, out, {"--model", "lanczos", "--encoder", "ffv1", "--segment-frames", "20", "--resume"});
  EXPECT_EQ(r.exit_status, 2) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("upframe: error: " + partial.string()), std::string::npos)
      << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("segment_frames was 10, now 20"), std::string::npos)
      << r.stderr_text;
  unchanged();
  r = run_upframe(in, out, kVideoArgs, "--resume --scale 3");
  EXPECT_EQ(r.exit_status, 2) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("scale was 2, now 3"), std::string::npos) << r.stderr_text;
  unchanged();
  r = run_upframe(in, out,
                  {"--model", "lanczos", "--encoder", "libx264", "--crf", "23", "--segment-frames",
                   "10", "--resume"});
  EXPECT_EQ(r.exit_status, 2) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("crf was 18, now 23"), std::string::npos) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("encoder was ffv1, now libx264"), std::string::npos)
      << r.stderr_text;
  unchanged();

  // Another input under the same name.
  fs::rename(in, dir / "old.mp4");
  auto other = run_command(
      "ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=320x240:rate=24:duration=5 "
      "-c:v libx264 -qp 0 " +
      quote(in.string()));
  ASSERT_EQ(other.exit_status, 0) << other.stderr_text;
  r = run_upframe(in, out, kVideoArgs, "--resume");
  EXPECT_EQ(r.exit_status, 2) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("input changed"), std::string::npos) << r.stderr_text;
  unchanged();

  // -y without --resume starts over.
  r = run_upframe(in, out, kVideoArgs, "-y --stats " + quote((dir / "s.json").string()));
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("removing the partial run"), std::string::npos) << r.stderr_text;
  EXPECT_FALSE(fs::exists(partial));
  EXPECT_EQ(stats_of(dir / "s.json")["resumed_frames"], 0);
}

fs::path make_small_input(const fs::path& dir) {
  auto in = dir / "in.mp4";
  auto r = run_command(
      "ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=96x64:rate=24:duration=1 "
      "-c:v libx264 -pix_fmt yuv420p " +
      quote(in.string()));
  EXPECT_EQ(r.exit_status, 0) << r.stderr_text;
  return in;
}

// --resume with nothing to resume runs the whole job (and says so).
TEST(CliResume, ResumeWithoutPartialRunStartsNormally) {
  auto dir = scratch_dir("cli-resume-none");
  auto in = make_small_input(dir);
  auto out = dir / "out.mkv";
  auto r = run_upframe(in, out, kVideoArgs, "--resume --stats " + quote((dir / "s.json").string()));
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("no partial run"), std::string::npos) << r.stderr_text;
  EXPECT_EQ(stats_of(dir / "s.json")["total_frames"], 24);
  EXPECT_EQ(stats_of(dir / "s.json")["resumed_frames"], 0);
  EXPECT_EQ(count_stream_lines(framemd5(out), "0"), 24u);
  EXPECT_FALSE(fs::exists(dir / "out.mkv.upframe-partial"));
}

// Lines of `text` that contain `needle`.
int count_lines_with(const std::string& text, const std::string& needle) {
  std::istringstream in(text);
  int n = 0;
  for (std::string line; std::getline(in, line);) n += line.find(needle) != std::string::npos;
  return n;
}

// Checks that a finished job run again with --resume says it is already complete (one info
// line), exits 0, does no work and leaves the output as it was (same bytes, same time).
void expect_already_complete(const fs::path& in, const fs::path& out,
                             const std::vector<std::string>& args, const fs::path& probe_file,
                             const fs::path& stats_file) {
  const auto time_before = fs::last_write_time(probe_file);
  const std::string bytes_before = read_file(probe_file);
  auto r = run_upframe(in, out, args, "--resume --stats " + quote(stats_file.string()));
  EXPECT_EQ(r.exit_status, 0) << r.stderr_text;
  EXPECT_EQ(count_lines_with(r.stderr_text, "already complete"), 1) << r.stderr_text;
  EXPECT_EQ(count_lines_with(r.stderr_text, out.string() + ": already complete"), 1)
      << r.stderr_text;
  EXPECT_EQ(r.stderr_text.find("mode:"), std::string::npos) << "work started: " << r.stderr_text;
  EXPECT_EQ(r.stderr_text.find("error"), std::string::npos) << r.stderr_text;
  EXPECT_EQ(fs::last_write_time(probe_file), time_before);
  EXPECT_EQ(read_file(probe_file), bytes_before);
  auto stats = stats_of(stats_file);
  EXPECT_EQ(stats["already_complete"], true);
  EXPECT_EQ(stats["total_frames"], 0);  // written by this run
  EXPECT_FALSE(fs::exists(pipeline_partial(out)));
}

// A finished video job run again with --resume is already complete. What is not this job's
// finished result is still refused: other options, an output changed since, a file upframe did
// not write (even a byte-identical copy of a finished output: no record of the job on it).
TEST(CliResume, FinishedVideoJobIsAlreadyComplete) {
  auto dir = scratch_dir("cli-resume-finished");
  auto in = make_small_input(dir);
  auto out = dir / "out.mkv";
  auto r = run_upframe(in, out, kVideoArgs);
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  ASSERT_TRUE(fs::exists(out));
  expect_already_complete(in, out, kVideoArgs, out, dir / "s.json");
  // -y with --resume: still nothing to redo.
  expect_already_complete(
      in, out, {"--model", "lanczos", "--encoder", "ffv1", "--segment-frames", "10", "-y"}, out,
      dir / "s2.json");

  const std::string bytes = read_file(out);
  const auto time = fs::last_write_time(out);
  // Other options: refused naming what differs; the output untouched.
  r = run_upframe(in, out, kVideoArgs, "--resume --hash-threshold 3");
  EXPECT_EQ(r.exit_status, 2) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("upframe: error: " + out.string() + ": output exists"),
            std::string::npos)
      << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("hash_threshold was 0, now 3"), std::string::npos) << r.stderr_text;
  EXPECT_EQ(read_file(out), bytes);
  EXPECT_EQ(fs::last_write_time(out), time);

  // A stray file at the output path: refused, kept.
  auto stray = dir / "stray.mkv";
  std::ofstream(stray) << "keep me";
  r = run_upframe(in, stray, kVideoArgs, "--resume");
  EXPECT_EQ(r.exit_status, 2) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find(stray.string() + ": output exists"), std::string::npos)
      << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("no record of a finished upframe job"), std::string::npos)
      << r.stderr_text;
  EXPECT_EQ(read_file(stray), "keep me");
  EXPECT_FALSE(fs::exists(dir / "stray.mkv.upframe-partial"));

  // A copy of the finished output (without its record): not known to be finished.
  auto copy = dir / "copy.mkv";
  fs::copy_file(out, copy);
  r = run_upframe(in, copy, kVideoArgs, "--resume");
  EXPECT_EQ(r.exit_status, 2) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("output exists"), std::string::npos) << r.stderr_text;

  // The finished output changed afterwards (here: appended to): not complete any more.
  std::ofstream(out, std::ios::app) << "x";
  r = run_upframe(in, out, kVideoArgs, "--resume");
  EXPECT_EQ(r.exit_status, 2) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("changed since it was written"), std::string::npos) << r.stderr_text;
  // -y redoes it.
  r = run_upframe(in, out, kVideoArgs, "--resume -y");
  EXPECT_EQ(r.exit_status, 0) << r.stderr_text;
  EXPECT_EQ(count_lines_with(r.stderr_text, "already complete"), 0) << r.stderr_text;
  EXPECT_EQ(count_stream_lines(framemd5(out), "0"), 24u);
}

// Frames-folder and image outputs behave the same: finished -> already complete; a folder or
// image upframe did not finish -> refused.
TEST(CliResume, FinishedFramesFolderAndImageAreAlreadyComplete) {
  auto dir = scratch_dir("cli-resume-finished-frames");
  auto in = make_small_input(dir);
  auto frames = dir / "frames";
  auto r = run_upframe(in, frames, kFramesArgs);
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  ASSERT_TRUE(fs::exists(frames / "00000024.png"));
  expect_already_complete(in, frames, kFramesArgs, frames / "00000001.png", dir / "s.json");
  // A frame removed since: not complete.
  fs::remove(frames / "00000024.png");
  r = run_upframe(in, frames, kFramesArgs, "--resume");
  EXPECT_EQ(r.exit_status, 2) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("changed since it was written"), std::string::npos) << r.stderr_text;
  // A folder of someone else's files: refused, untouched.
  auto other = dir / "other";
  fs::create_directories(other);
  std::ofstream(other / "notes.txt") << "keep me";
  r = run_upframe(in, other, kFramesArgs, "--resume");
  EXPECT_EQ(r.exit_status, 2) << r.stderr_text;
  EXPECT_EQ(read_file(other / "notes.txt"), "keep me");
  EXPECT_FALSE(fs::exists(dir / "other.upframe-partial"));
  // An empty folder is no finished job: --resume writes the frames there as without it.
  auto empty = dir / "empty";
  fs::create_directories(empty);
  r = run_upframe(in, empty, kFramesArgs, "--resume");
  EXPECT_EQ(r.exit_status, 0) << r.stderr_text;
  EXPECT_TRUE(fs::exists(empty / "00000024.png"));

  // An image.
  auto image = dir / "a.png";
  auto made = run_command(
      "ffmpeg -hide_banner -loglevel error -y -f lavfi -i "
      "testsrc2=size=64x48 -frames:v 1 " +
      quote(image.string()));
  ASSERT_EQ(made.exit_status, 0) << made.stderr_text;
  const std::vector<std::string> image_args = {"--model", "lanczos"};
  auto big = dir / "big.png";
  r = run_upframe(image, big, image_args);
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  expect_already_complete(image, big, image_args, big, dir / "i.json");
  // Another scale: refused naming it.
  r = run_upframe(image, big, {"--model", "lanczos", "--scale", "3"}, "--resume");
  EXPECT_EQ(r.exit_status, 2) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("scale was 2, now 3"), std::string::npos) << r.stderr_text;
  // Another image at the output path.
  auto stray = dir / "stray.png";
  fs::copy_file(image, stray);
  r = run_upframe(image, stray, image_args, "--resume");
  EXPECT_EQ(r.exit_status, 2) << r.stderr_text;
  EXPECT_EQ(read_file(stray), read_file(image));
}

// --- nothing lost (issue 21) ---

// The frames of an uninterrupted run of `args`: what every interrupted and resumed run must
// give.
std::vector<std::string> uninterrupted_frames(const fs::path& in, const fs::path& dir,
                                              const std::vector<std::string>& args) {
  const fs::path reference = dir / "reference.mkv";
  auto r = run_upframe(in, reference, args);
  EXPECT_EQ(r.exit_status, 0) << r.stderr_text;
  return framemd5(reference);
}

// The program with an environment variable set, run to its end.
CommandResult run_upframe_with(const std::string& environment, const fs::path& in,
                               const fs::path& out, const std::vector<std::string>& args,
                               const std::string& extra = "") {
  return run_command(environment + " " + quote(cli_path().string()) + " " + quote(in.string()) +
                     " -o " + quote(out.string()) + join_args(args) + " " + extra);
}

// Two plain runs on one output: the second is refused with one line naming the first process
// (status 2), with or without -y, and the first one's partial run and output are untouched.
TEST(CliResume, SecondRunOnOneOutputIsRefusedWhileTheFirstRuns) {
  auto dir = scratch_dir("cli-resume-two-runs");
  auto in = make_input(dir);
  const auto expected = uninterrupted_frames(in, dir, kVideoArgs);
  auto out = dir / "out.mkv";
  auto partial = pipeline_partial(out);
  pid_t first = spawn_upframe(in, out, kVideoArgs);
  ASSERT_TRUE(wait_while_running(first, [&] { return manifest_segments(partial) >= 1; }))
      << "the first run ended before a segment was finished";
  for (const std::string extra : {"", "-y", "--resume"}) {
    auto r = run_upframe(in, out, kVideoArgs, extra);
    EXPECT_EQ(r.exit_status, 2) << extra << ": " << r.stderr_text;
    EXPECT_NE(r.stderr_text.find("upframe: error: " + partial.string() +
                                 ": another upframe process (pid " + std::to_string(first)),
              std::string::npos)
        << extra << ": " << r.stderr_text;
    EXPECT_TRUE(fs::exists(partial / "manifest.json")) << extra;
  }
  int status = 0;
  ASSERT_EQ(waitpid(first, &status, 0), first);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_FALSE(fs::exists(partial));
  EXPECT_EQ(framemd5(out), expected);
}

// A kill at each step of finishing (after the join is written and recorded, after its rename,
// after the partial folder is renamed away, half way through removing it) leaves either a
// partial run that --resume finishes or a finished output that --resume recognises; never a
// half-deleted partial folder under its name. Each time the result is the uninterrupted one.
TEST(CliResume, KillAtEveryFinishStepLeavesAResumableOrFinishedJob) {
  auto dir = scratch_dir("cli-resume-finish-kill");
  auto in = make_input(dir);
  const auto expected = uninterrupted_frames(in, dir, kVideoArgs);
  for (const std::string step :
       {"joined", "output-renamed", "partial-renamed", "partial-half-removed"}) {
    SCOPED_TRACE(step);
    const fs::path out = dir / (step + ".mkv");
    auto partial = pipeline_partial(out);
    auto r = run_upframe_with("UPFRAME_TEST_KILL_AT=" + step, in, out, kVideoArgs);
    ASSERT_EQ(r.exit_status, 128 + SIGKILL) << r.stderr_text;
    // Whole or absent: the partial folder, if there, still has its manifest and segments.
    if (fs::exists(partial)) {
      EXPECT_EQ(manifest_segments(partial), 12u);
    }
    EXPECT_TRUE(fs::exists(partial) || fs::exists(out));

    r = run_upframe(in, out, kVideoArgs, "--resume");
    ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
    EXPECT_EQ(framemd5(out), expected);
    EXPECT_FALSE(fs::exists(partial));
    EXPECT_FALSE(fs::exists(partial.string() + ".done"));
    r = run_upframe(in, out, kVideoArgs, "--resume");
    ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
    EXPECT_NE(r.stderr_text.find("already complete"), std::string::npos) << r.stderr_text;
  }
  expect_no_temporaries(dir);
}

// Flips one byte of `file` at `offset` from its end.
void flip_byte(const fs::path& file, std::streamoff from_end) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(-from_end, std::ios::end);
  char c = 0;
  f.get(c);
  f.seekp(-from_end, std::ios::end);
  f.put(char(c ^ 0x20));
}

// A flipped byte in a finished segment (in a packet's payload, where nothing but the checksum
// can see it) is one warning naming the segment, which --resume makes again: the output is
// the uninterrupted one, never a silent join of the damaged bytes.
TEST(CliResume, FlippedByteInASegmentIsNamedAndMadeAgain) {
  auto dir = scratch_dir("cli-resume-flipped");
  auto in = make_input(dir);
  const auto expected = uninterrupted_frames(in, dir, kVideoArgs);
  auto out = dir / "out.mkv";
  auto partial = pipeline_partial(out);
  // Every segment finished, the join not yet renamed into place.
  auto r = run_upframe_with("UPFRAME_TEST_KILL_AT=joined", in, out, kVideoArgs);
  ASSERT_EQ(r.exit_status, 128 + SIGKILL) << r.stderr_text;
  const fs::path damaged = partial / "seg_00000030.upseg";  // frames 30..39
  ASSERT_TRUE(fs::exists(damaged));
  flip_byte(damaged, 200);  // inside the last packets, before the end record

  r = run_upframe(in, out, kVideoArgs, "--resume --stats " + quote((dir / "s.json").string()));
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  EXPECT_NE(
      r.stderr_text.find("upframe: warning: " + damaged.string() + ": damaged: checksum mismatch"),
      std::string::npos)
      << r.stderr_text;
  EXPECT_EQ(stats_of(dir / "s.json")["resumed_frames"], 110);  // all but the damaged one
  EXPECT_EQ(framemd5(out), expected);
  EXPECT_FALSE(fs::exists(partial));
}

// Packets (not decoded frames) of the video stream: equal when the encoder made the same
// bytes.
std::vector<std::string> packet_md5(const fs::path& file) {
  auto r = run_command("ffmpeg -hide_banner -v error -i " + quote(file.string()) +
                       " -map 0:v -c copy -f framemd5 -");
  EXPECT_EQ(r.exit_status, 0) << r.stderr_text;
  return {r.stdout_text};
}

// Identical runs give identical bytes, segment after segment, so that "resume and segments
// give the frames of one process" holds for lossy encoders too: the same H.264 job three
// times, in pipeline mode and one frame at a time, each with several segments.
TEST(CliResume, IdenticalRunsGiveIdenticalStreams) {
  auto dir = scratch_dir("cli-resume-identical");
  auto in = make_input(dir);
  for (const std::string mode : {"", "--no-parallel"}) {
    SCOPED_TRACE(mode.empty() ? "pipeline" : mode);
    const std::vector<std::string> args = {"--model", "lanczos",          "--encoder",
                                           "libx264", "--segment-frames", "48"};
    std::vector<std::vector<std::string>> packets, frames;
    for (int run = 0; run < 3; ++run) {
      auto out = dir / ("run" + std::to_string(run) + (mode.empty() ? "p" : "s") + ".mp4");
      auto r = run_upframe(in, out, args, mode);
      ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
      packets.push_back(packet_md5(out));
      frames.push_back(framemd5(out));
    }
    EXPECT_EQ(count_stream_lines(frames[0], "0"), 120u);
    for (int run = 1; run < 3; ++run) {
      EXPECT_EQ(packets[run], packets[0]) << "run " << run;
      EXPECT_EQ(frames[run], frames[0]) << "run " << run;
    }
  }
}

// Lossless, one frame at a time, with one segment planned for the whole clip that only the
// time limit `max_seconds` can close early ("0": never).
std::vector<std::string> one_long_segment(const std::string& max_seconds) {
  return {"--model",       "lanczos",          "--encoder", "ffv1",
          "--no-parallel", "--segment-frames", "100000",    "--segment-max-seconds",
          max_seconds};
}

// The segment being written, under its temporary name in the partial folder ("" if none).
fs::path open_segment(const fs::path& partial) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(partial, ec))
    if (e.path().filename().string().rfind(".seg_", 0) == 0) return e.path();
  return {};
}

// Ctrl-C before the first segment is finished keeps the frames written so far (the open
// segment is closed where it stands) and says how many; --resume goes on from there to the
// uninterrupted result.
TEST(CliResume, InterruptBeforeTheFirstSegmentKeepsTheFramesWritten) {
  auto dir = scratch_dir("cli-resume-early-sigint");
  auto in = make_input(dir);
  const std::vector<std::string> args = one_long_segment("0");
  const auto expected = uninterrupted_frames(in, dir, args);
  auto out = dir / "out.mkv";
  auto partial = pipeline_partial(out);
  // Not --quiet: the interruption's line is what is checked.
  const fs::path log = dir / "stderr.txt";
  const pid_t pid = spawn_upframe(in, out, args, log);
  // A few frames into the first (and only planned) segment.
  ASSERT_TRUE(wait_while_running(pid, [&] {
    const fs::path open = open_segment(partial);
    std::error_code ec;
    return !open.empty() && fs::file_size(open, ec) > 200000 && !ec;
  })) << "the run ended before frames were written";
  EXPECT_EQ(stop_with(pid, SIGINT), 130);
  const std::string text = read_file(log);
  const size_t at = text.find("interrupted: ");
  ASSERT_NE(at, std::string::npos) << text;
  const int64_t kept = std::atoll(text.c_str() + at + 13);
  EXPECT_GT(kept, 0) << text;
  EXPECT_LT(kept, 120) << text;
  EXPECT_NE(text.find(" frame(s) kept in the partial run at " + partial.string()),
            std::string::npos)
      << text;
  EXPECT_EQ(manifest_segments(partial), 1u);
  expect_no_temporaries(partial);

  auto r = run_upframe(in, out, args, "--resume --stats " + quote((dir / "s.json").string()));
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  EXPECT_EQ(stats_of(dir / "s.json")["resumed_frames"], kept);
  EXPECT_EQ(framemd5(out), expected);
}

// A segment is closed by work done as well as by frames: with a time limit far below what the
// frame count takes, finished segments appear while the run goes on, each shorter than the
// frame count; a SIGKILL then loses only the open one, and --resume finishes the job to the
// uninterrupted result.
TEST(CliResume, SegmentsCloseByTimeSoAKillLosesLittle) {
  auto dir = scratch_dir("cli-resume-time-cut");
  auto in = make_input(dir, 20);  // 480 frames: several seconds of work
  const std::vector<std::string> args = one_long_segment("1");
  const auto expected = uninterrupted_frames(in, dir, args);
  auto out = dir / "out.mkv";
  auto partial = pipeline_partial(out);
  pid_t pid = spawn_upframe(in, out, args);
  if (!wait_while_running(pid, [&] { return manifest_segments(partial) >= 1; })) {
    // This machine finished all 480 frames within the limit: nothing to interrupt.
    GTEST_SKIP() << "the run finished in under a second";
  }
  EXPECT_EQ(stop_with(pid, SIGKILL), 128 + SIGKILL);
  auto manifest = nlohmann::json::parse(read_file(partial / "manifest.json"));
  ASSERT_GE(manifest["segments"].size(), 1u);
  EXPECT_EQ(manifest["segments"][0]["first_frame"], 0);
  EXPECT_LT(manifest["segments"][0]["frames"].get<int64_t>(), 480);
  auto r = run_upframe(in, out, args, "--resume");
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  EXPECT_FALSE(fs::exists(partial));
  EXPECT_EQ(framemd5(out), expected);
}

// Inputs smaller than the duplicate hash (a side under 8 pixels) are upscaled frame by frame
// with one line saying why, to a video of the right size and frame count.
TEST(CliResume, InputsSmallerThanTheHashAreUpscaled) {
  auto dir = scratch_dir("cli-tiny-inputs");
  for (const std::string size : {"6x4", "2x2"}) {
    SCOPED_TRACE(size);
    const fs::path in = dir / ("in_" + size + ".mkv");
    auto r =
        run_command("ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=" + size +
                    ":rate=24:duration=1 -c:v ffv1 -pix_fmt yuv444p " + quote(in.string()));
    ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
    const fs::path out = dir / ("out_" + size + ".mkv");
    r = run_cli(quote(in.string()) + " -o " + quote(out.string()) +
                " --model lanczos --encoder libx264 --segment-frames 10");
    ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
    EXPECT_NE(r.stderr_text.find(in.string() + ": " + size +
                                 " is smaller than the 8x8 duplicate hash: every frame is "
                                 "upscaled"),
              std::string::npos)
        << r.stderr_text;
    EXPECT_EQ(count_stream_lines(framemd5(out), "0"), 24u);
    r = run_command(
        "ffprobe -v error -select_streams v:0 -show_entries stream=width,height -of "
        "csv=p=0 " +
        quote(out.string()));
    const int w = std::stoi(size.substr(0, size.find('x'))), h = std::stoi(size.substr(2));
    EXPECT_EQ(r.stdout_text, std::to_string(2 * w) + "," + std::to_string(2 * h) + "\n");
  }
}

}  // namespace
}  // namespace upframe::test
