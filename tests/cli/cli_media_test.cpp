// The whole program on generated clips: timestamps, bit depth, duplicate scopes and
// interruption, checked with ffprobe and the stats.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "support/synth.hpp"
#include "support/test_support.hpp"

namespace upframe::test {
namespace {

nlohmann::json ffprobe_json(const std::string& args, const fs::path& file) {
  auto r = run_command("ffprobe -v error " + args + " -of json " + quote(file.string()));
  EXPECT_EQ(r.exit_status, 0) << r.stderr_text;
  return nlohmann::json::parse(r.stdout_text);
}

std::vector<double> frame_times(const fs::path& file) {
  auto j = ffprobe_json("-select_streams v:0 -show_entries frame=pts_time", file);
  std::vector<double> times;
  for (const auto& f : j["frames"]) times.push_back(std::stod(f["pts_time"].get<std::string>()));
  return times;
}

nlohmann::json run_ok(const std::string& args, const fs::path& stats) {
  auto r = run_cli(args + " --stats " + quote(stats.string()));
  EXPECT_EQ(r.exit_status, 0) << r.stderr_text;
  return nlohmann::json::parse(read_file(stats));
}

// A lossless source carries no coding noise: a faint change of a dozen pixels (a clock digit,
// 18 levels), far below the noise-tolerant measures, keeps its frame, while exact repeats
// are still found. The same picture through x264 keeps the tolerant measures.
TEST(CliMedia, LosslessSourceDuplicatesMustBeExact) {
  auto dir = scratch_dir("cli-lossless-dedup");
  synth::ClipSpec spec;
  spec.width = 48;
  spec.height = 32;
  spec.frames = 12;
  // The digit's strokes change on frames 2, 5, 8 and 11; the other frames repeat.
  auto frames = synth::render_clip(spec, [](int i, int x, int y) {
    double v = 60 + 2.0 * x + y;
    const int digit = (i + 1) / 3;
    if (x >= 20 + 2 * (digit % 3) && x < 22 + 2 * (digit % 3) && y >= 10 && y < 16) v += 18;
    return v;
  });
  synth::EncodeOptions ffv1;
  ffv1.codec = "ffv1";
  const auto in = dir / "digits.mkv";
  synth::encode_clip(in, frames, ffv1);
  auto r =
      run_cli(quote(in.string()) + " --model lanczos --encoder ffv1 -o " +
              quote((dir / "out.mkv").string()) + " --stats " + quote((dir / "s.json").string()));
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("is a lossless codec: only frames equal"), std::string::npos)
      << r.stderr_text;
  const auto stats = nlohmann::json::parse(read_file(dir / "s.json"));
  EXPECT_EQ(stats["total_frames"], 12);
  EXPECT_EQ(stats["duplicate_frames"], 7);  // 1, 3, 4, 6, 7, 9, 10 repeat; 2, 5, 8, 11 change
}

// Variable frame rate stays variable: every output frame keeps its input time.
TEST(CliMedia, VariableFrameRateKeptFrameForFrame) {
  auto dir = scratch_dir("cli-vfr");
  synth::ClipSpec spec;
  spec.width = 96;
  spec.height = 64;
  spec.frames = 30;
  synth::EncodeOptions enc;
  enc.codec = "libx264";
  enc.time_base = {1, 1000};
  int64_t t = 0;
  for (int i = 0; i < spec.frames; ++i) {
    enc.pts.push_back(t);
    t += (i % 3 == 0) ? 100 : (i % 3 == 1 ? 33 : 50);  // irregular gaps
  }
  auto in = dir / "vfr.mkv";
  synth::encode_clip(in, synth::distinct_clip(spec), enc);
  auto stats =
      run_ok(quote(in.string()) + " --model lanczos -o " + quote((dir / "out.mkv").string()),
             dir / "s.json");
  EXPECT_EQ(stats["total_frames"], spec.frames);
  std::vector<double> before = frame_times(in), after = frame_times(dir / "out.mkv");
  ASSERT_EQ(before.size(), after.size());
  for (size_t i = 0; i < before.size(); ++i) EXPECT_NEAR(before[i], after[i], 0.0011) << i;
}

// 10-bit in gives 10-bit out (libx265 by default), with its colour metadata.
TEST(CliMedia, TenBitStaysTenBit) {
  auto dir = scratch_dir("cli-10bit");
  auto in = dir / "in10.mkv";
  auto r = run_command(
      "ffmpeg -hide_banner -loglevel error -f lavfi -i testsrc2=size=96x64:rate=24:duration=1 "
      "-pix_fmt yuv420p10le -c:v libx265 -x265-params log-level=error -color_primaries bt2020 "
      "-color_trc smpte2084 -colorspace bt2020nc " +
      quote(in.string()));
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  auto stats =
      run_ok(quote(in.string()) + " --model lanczos -o " + quote((dir / "out.mkv").string()),
             dir / "s.json");
  EXPECT_EQ(stats["encoder"], "libx265");
  auto j = ffprobe_json("-show_streams", dir / "out.mkv");
  const auto& v = j["streams"][0];
  EXPECT_EQ(v["pix_fmt"], "yuv420p10le");
  EXPECT_EQ(v["color_primaries"], "bt2020");
  EXPECT_EQ(v["color_transfer"], "smpte2084");
  EXPECT_EQ(v["width"], 192);
}

// A-B-A-B...: consecutive scope sees no duplicates; global scope maps each repeat to its
// earlier unique frame, and the written frames equal the consecutive run's.
TEST(CliMedia, GlobalScopeMapsToEarlierFrames) {
  auto dir = scratch_dir("cli-global");
  synth::ClipSpec spec;
  spec.width = 96;
  spec.height = 64;
  spec.frames = 2;
  auto pictures = synth::distinct_clip(spec);
  std::vector<Frame> frames;
  for (int i = 0; i < 20; ++i) frames.push_back(pictures[i % 2].ref());
  synth::EncodeOptions enc;
  enc.codec = "ffv1";
  auto in = dir / "abab.mkv";
  synth::encode_clip(in, frames, enc);
  auto consecutive = run_ok(
      quote(in.string()) + " --model lanczos --format png -o " + quote((dir / "c").string() + "/"),
      dir / "c.json");
  auto global = run_ok(quote(in.string()) + " --model lanczos --dedup global --format png -o " +
                           quote((dir / "g").string() + "/"),
                       dir / "g.json");
  EXPECT_EQ(consecutive["duplicate_frames"], 0);
  EXPECT_EQ(global["unique_frames"], 2);
  EXPECT_EQ(global["duplicate_frames"], 18);
  for (int i = 1; i <= 20; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "%08d.png", i);
    EXPECT_EQ(read_file(dir / "c" / name), read_file(dir / "g" / name)) << name;
  }
}

TEST(CliMedia, NoSkipDuplicatesUpscalesEveryFrame) {
  auto dir = scratch_dir("cli-noskip");
  auto stats = run_ok(quote((source_dir() / "samples" / "sample.mp4").string()) +
                          " --model lanczos --no-skip-duplicates --encoder ffv1 -o " +
                          quote((dir / "o.mkv").string()),
                      dir / "s.json");
  EXPECT_EQ(stats["unique_frames"], 72);
  EXPECT_EQ(stats["duplicate_frames"], 0);
}

// SIGINT stops the job promptly with status 130 and nothing at the output path; only the
// resumable partial run stays (tests/cli/cli_resume_test.cpp resumes it).
TEST(CliMedia, InterruptLeavesNothingButThePartialRun) {
  auto dir = scratch_dir("cli-sigint");
  auto in = dir / "long.mp4";
  auto r = run_command(
      "ffmpeg -hide_banner -loglevel error -f lavfi -i testsrc2=size=640x360:rate=25:duration=20 "
      "-c:v libx264 -preset ultrafast -pix_fmt yuv420p " +
      quote(in.string()));
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  auto out = dir / "out.mp4";
  pid_t pid = fork();
  if (pid == 0) {
    execl(cli_path().c_str(), "upframe", in.c_str(), "--model", "lanczos", "--quiet", "-o",
          out.c_str(), (char*)nullptr);
    _exit(127);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  auto sent = std::chrono::steady_clock::now();
  kill(pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - sent).count();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130);
  // A hang guard, not a speed target (the stop's latency belongs in a benchmark): the stop is
  // checked before each frame, so it comes long before this.
  EXPECT_LT(seconds, 60.0);
  EXPECT_FALSE(fs::exists(out));
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename() == "out.mp4.upframe-partial") continue;
    EXPECT_EQ(e.path().filename().string().find("upframe-"), std::string::npos) << e.path();
  }
  EXPECT_TRUE(fs::exists(dir / "out.mp4.upframe-partial" / "manifest.json"));
}

}  // namespace
}  // namespace upframe::test

namespace upframe::test {
namespace {

// Rotation metadata (the display matrix) is carried, so players show the upscaled video the
// way they showed the input; the pixels are not rotated.
TEST(CliMedia, RotationMetadataKept) {
  auto dir = scratch_dir("cli-rotate");
  auto plain = dir / "plain.mp4", rotated = dir / "rotated.mp4";
  auto r = run_command(
      "ffmpeg -hide_banner -loglevel error -f lavfi -i "
      "testsrc2=size=64x48:rate=24:duration=0.5 -pix_fmt yuv420p -c:v libx264 " +
      quote(plain.string()) + " && ffmpeg -hide_banner -loglevel error -i " +
      quote(plain.string()) + " -c copy -metadata:s:v:0 rotate=90 " + quote(rotated.string()));
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  auto out = dir / "out.mp4";
  auto stats = run_ok(quote(rotated.string()) + " --model lanczos -o " + quote(out.string()),
                      dir / "s.json");
  auto j = ffprobe_json("-show_streams", out);
  const auto& v = j["streams"][0];
  EXPECT_EQ(v["width"], 128);
  ASSERT_TRUE(v.contains("side_data_list")) << v.dump();
  bool found = false;
  for (const auto& sd : v["side_data_list"])
    if (sd.contains("rotation")) found = sd["rotation"] == 90;
  EXPECT_TRUE(found) << v.dump();
}

// `frames` frames of testsrc2 at `size` through x264 (no B-frames: decode order is display
// order), made by the ffmpeg program.
fs::path x264_clip(const fs::path& path, const std::string& size, int frames) {
  auto made = run_command("ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=" +
                          size + ":rate=24 -frames:v " + std::to_string(frames) +
                          " -c:v libx264 -g 12 -bf 0 -pix_fmt yuv420p " + quote(path.string()));
  EXPECT_EQ(made.exit_status, 0) << made.stderr_text;
  return path;
}

// A copy of `clip` with `count` bytes set to `value` in its video packet `packet` (in file
// order), from its middle (`middle`) or from its first byte.
fs::path damage_packet(const fs::path& clip, const fs::path& damaged, size_t packet, bool middle,
                       int count, char value) {
  auto packets = ffprobe_json("-select_streams v:0 -show_entries packet=pos,size", clip);
  EXPECT_GT(packets["packets"].size(), packet);
  const auto& p = packets["packets"][packet];
  const size_t size = std::stoul(p["size"].get<std::string>());
  const size_t from = std::stoul(p["pos"].get<std::string>()) + (middle ? size / 2 : 0);
  std::string bytes = read_file(clip);
  for (size_t i = from; i < from + size_t(count); ++i) bytes[i] = value;
  std::ofstream(damaged, std::ios::binary) << bytes;
  return damaged;
}

// Damaged sources (docs/FIDELITY.md): a frame the decoder concealed errors in is one warning
// naming its index and time and is counted in the stats and the progress; the run succeeds
// and says no "error". --strict makes it a failure: one error line, exit 1, no output.
// libav's own messages never arrive as errors, nor with their context's address.
TEST(CliMedia, DamagedFrameIsAWarningOrWithStrictAFailure) {
  auto dir = scratch_dir("cli-damaged");
  const fs::path clip = x264_clip(dir / "clip.mkv", "160x90", 24);
  // 24 bytes zeroed in the middle of picture 5's slice data, its headers intact: the decoder
  // conceals the errors (error resilience) rather than refusing the packet.
  const fs::path bad = damage_packet(clip, dir / "bad.mkv", 5, true, 24, 0);

  const fs::path out = dir / "out.mkv", stats = dir / "s.json";
  auto r = run_cli(quote(bad.string()) + " --model lanczos --encoder ffv1 --progress-json -o " +
                   quote(out.string()) + " --stats " + quote(stats.string()));
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  EXPECT_EQ(r.stderr_text.find("error:"), std::string::npos) << r.stderr_text;
  EXPECT_EQ(r.stderr_text.find("@ 0x"), std::string::npos) << r.stderr_text;
  const std::regex warning("upframe: warning: " + bad.string() +
                           ": frame (\\d+) at (\\d+\\.\\d{3}) s is damaged: the decoder "
                           "concealed errors in it\n");
  int warnings = 0;
  for (auto it = std::sregex_iterator(r.stderr_text.begin(), r.stderr_text.end(), warning);
       it != std::sregex_iterator(); ++it) {
    ++warnings;
    const int index = std::stoi((*it)[1].str());
    // The damaged picture is frame 5 (no B-frames: decode order is display order); a later
    // one may be flagged too where it refers to it.
    EXPECT_GE(index, 5) << r.stderr_text;
    EXPECT_NEAR(std::stod((*it)[2].str()), index / 24.0, 0.001);
  }
  EXPECT_GE(warnings, 1) << r.stderr_text;
  const auto j = nlohmann::json::parse(read_file(stats));
  EXPECT_EQ(j["damaged_frames"], warnings);
  EXPECT_EQ(j["total_frames"], 24);
  // The final progress record carries the count too.
  std::istringstream lines(r.stdout_text);
  nlohmann::json last;
  for (std::string line; std::getline(lines, line);) last = nlohmann::json::parse(line);
  EXPECT_EQ(last["final"], true);
  EXPECT_EQ(last["damaged_frames"], warnings);

  // The undamaged clip: no warning, a count of 0.
  r = run_cli(quote(clip.string()) + " --model lanczos --encoder ffv1 -y -o " +
              quote(out.string()) + " --stats " + quote(stats.string()));
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  EXPECT_EQ(r.stderr_text.find("is damaged"), std::string::npos) << r.stderr_text;
  EXPECT_EQ(nlohmann::json::parse(read_file(stats))["damaged_frames"], 0);

  // --strict (and the config key strict): the first damaged frame ends the run.
  const fs::path strict_out = dir / "strict.mkv";
  r = run_cli(quote(bad.string()) + " --model lanczos --encoder ffv1 --strict -o " +
              quote(strict_out.string()));
  EXPECT_EQ(r.exit_status, 1) << r.stderr_text;
  EXPECT_NE(
      r.stderr_text.find("upframe: error: " + bad.string() + ": frame 5 at 0.208 s is damaged"),
      std::string::npos)
      << r.stderr_text;
  size_t error_lines = 0;
  for (size_t at = 0; (at = r.stderr_text.find("error:", at)) != std::string::npos; ++at)
    ++error_lines;
  EXPECT_EQ(error_lines, 1u) << "only upframe's own line says error:\n" << r.stderr_text;
  EXPECT_FALSE(fs::exists(strict_out));
  std::ofstream(dir / "upframe.toml") << "strict = true\n";
  r = run_command("cd " + quote(dir.string()) + " && " + quote(cli_path().string()) + " " +
                  quote(bad.string()) + " --model lanczos --encoder ffv1 -o " +
                  quote(strict_out.string()));
  EXPECT_EQ(r.exit_status, 1) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("is damaged"), std::string::npos) << r.stderr_text;
}

// libav's messages on a packet it cannot decode: warnings without the context's address,
// never "error"; only upframe's own last line is.
TEST(CliMedia, LibavMessagesAreNotErrors) {
  auto dir = scratch_dir("cli-libav-lines");
  const fs::path clip = x264_clip(dir / "clip.mp4", "64x36", 12);
  // Picture 5's NAL length prefix overwritten: the parser and decoder refuse the packet.
  const fs::path cut = damage_packet(clip, dir / "bad.mp4", 5, false, 4, 0x5a);
  auto r = run_cli(quote(cut.string()) + " --model lanczos -o " + quote((dir / "o.mkv").string()));
  EXPECT_EQ(r.exit_status, 1) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("upframe: warning: libav"), std::string::npos) << r.stderr_text;
  size_t errors = 0;
  for (size_t at = 0; (at = r.stderr_text.find("upframe: error:", at)) != std::string::npos; ++at)
    ++errors;
  EXPECT_EQ(errors, 1u) << r.stderr_text;
  EXPECT_EQ(r.stderr_text.find("@ 0x"), std::string::npos) << r.stderr_text;
  EXPECT_EQ(r.stderr_text.rfind("upframe: error: " + cut.string()),
            r.stderr_text.find("upframe: error:"))
      << r.stderr_text;
}

// Still images: what the output format cannot keep is one warning each (alpha in a JPEG, 16
// bits in an 8-bit format); a grey JPEG stays grey; --progress-json ends with a final record.
TEST(CliMedia, ImageOutputSaysWhatItDrops) {
  auto dir = scratch_dir("cli-image-losses");
  auto make = [&](const fs::path& path, const std::string& args) {
    auto r = run_command(
        "ffmpeg -hide_banner -loglevel error -y -f lavfi -i "
        "testsrc2=size=32x24 -frames:v 1 " +
        args + " " + quote(path.string()));
    EXPECT_EQ(r.exit_status, 0) << r.stderr_text;
    return path;
  };
  auto count = [](const std::string& text, const std::string& part) {
    int n = 0;
    for (size_t at = 0; (at = text.find(part, at)) != std::string::npos; ++at) ++n;
    return n;
  };
  const fs::path rgba =
      make(dir / "alpha.png",
           "-vf format=rgba,colorchannelmixer=aa=0.5");
  const fs::path deep = make(dir / "deep.png", "-pix_fmt rgb48be");
  const fs::path gray_png = make(dir / "gray.png", "-pix_fmt gray");

  fs::path out = dir / "alpha.jpg";
  auto r = run_cli(quote(rgba.string()) + " --model lanczos -o " + quote(out.string()));
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  EXPECT_EQ(count(r.stderr_text, "upframe: warning: " + out.string() + ": alpha channel dropped"),
            1)
      << r.stderr_text;
  // PNG keeps alpha: nothing to say.
  r = run_cli(quote(rgba.string()) + " --model lanczos -o " + quote((dir / "alpha2.png").string()));
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  EXPECT_EQ(count(r.stderr_text, "dropped"), 0) << r.stderr_text;

  out = dir / "deep.jpg";
  r = run_cli(quote(deep.string()) + " --model lanczos -o " + quote(out.string()));
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  EXPECT_EQ(
      count(r.stderr_text, "upframe: warning: " + out.string() + ": reduced from 16 to 8 bits"), 1)
      << r.stderr_text;
  r = run_cli(quote(deep.string()) + " --model lanczos -o " + quote((dir / "deep2.png").string()));
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  EXPECT_EQ(count(r.stderr_text, "reduced"), 0) << r.stderr_text;
  EXPECT_EQ(
      ffprobe_json("-show_entries stream=pix_fmt", dir / "deep2.png")["streams"][0]["pix_fmt"],
      "rgb48be");

  // A grey JPEG (the ffmpeg program cannot write one: its mjpeg encoder writes colour only)...
  const fs::path gray = dir / "gray.jpg";
  r = run_cli(quote(gray_png.string()) + " --model lanczos --scale 1 -o " + quote(gray.string()));
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  ASSERT_EQ(ffprobe_json("-show_entries stream=pix_fmt", gray)["streams"][0]["pix_fmt"], "gray");
  // ...in, a grey JPEG out (through the default network too), with --progress-json's final
  // record.
  for (const std::string model : {"lanczos", "realesr-animevideov3"}) {
    out = dir / ("gray-" + model + ".jpg");
    r = run_cli(quote(gray.string()) + " --model " + model + " --progress-json -o " +
                quote(out.string()));
    ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
    const auto j = ffprobe_json("-show_entries stream=pix_fmt,width,height", out);
    EXPECT_EQ(j["streams"][0]["pix_fmt"], "gray") << model;
    EXPECT_EQ(j["streams"][0]["width"], 64) << model;
    const auto progress = nlohmann::json::parse(r.stdout_text);
    EXPECT_EQ(progress["final"], true) << r.stdout_text;
    EXPECT_EQ(progress["frames_done"], 1) << r.stdout_text;
    EXPECT_EQ(progress["frames_total"], 1) << r.stdout_text;
  }
}

}  // namespace
}  // namespace upframe::test
