// The real `upframe` program on real files: bad input (SPEC section 7), outputs, stats,
// mode selection and progress. Uses --model lanczos where the network is not the point,
// so the suite stays fast on two cores.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "support/test_support.hpp"

namespace upframe::test {
namespace {

fs::path sample_clip() { return source_dir() / "samples" / "sample.mp4"; }

// A small clip made by the ffmpeg program from a lavfi source.
fs::path make_clip(const fs::path& path, const std::string& lavfi, const std::string& extra = "") {
  auto r = run_command("ffmpeg -hide_banner -loglevel error -y -f lavfi -i " + quote(lavfi) + " " +
                       extra + " " + quote(path.string()));
  EXPECT_EQ(r.exit_status, 0) << r.stderr_text;
  return path;
}

nlohmann::json probe(const fs::path& file) {
  auto r = run_command("ffprobe -v error -count_frames -show_streams -show_format -of json " +
                       quote(file.string()));
  EXPECT_EQ(r.exit_status, 0) << r.stderr_text;
  return nlohmann::json::parse(r.stdout_text);
}

// Every bad input: one error line naming the file, the exit status, nothing at the output.
void expect_error(const CommandResult& r, int status, const std::string& names,
                  const fs::path& output = {}) {
  EXPECT_EQ(r.exit_status, status) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("upframe: error: "), std::string::npos) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find(names), std::string::npos) << r.stderr_text;
  if (!output.empty()) {
    EXPECT_FALSE(fs::exists(output)) << output;
    // Nor a temporary file beside it.
    for (const auto& e : fs::directory_iterator(output.parent_path()))
      EXPECT_EQ(e.path().filename().string().find("upframe-"), std::string::npos) << e.path();
  }
}

TEST(Cli, HelpListsFlagsWithDefaults) {
  auto r = run_cli("--help");
  EXPECT_EQ(r.exit_status, 0);
  for (const char* flag : {"--hash-size", "--pipeline-min-frames", "--no-parallel", "--dedup",
                           "--workers", "--tile", "--precision", "--stats", "--no-space-check",
                           "--enable-gpu-pipeline", "--no-skip-duplicates", "--preload-frames"})
    EXPECT_NE(r.stdout_text.find(flag), std::string::npos) << flag;
  EXPECT_NE(r.stdout_text.find("default: 50"), std::string::npos);
}

TEST(CliBadInput, MissingFile) {
  auto dir = scratch_dir("cli-missing");
  auto out = dir / "out.mp4";
  expect_error(run_cli(quote((dir / "nope.mp4").string()) + " -o " + quote(out.string())), 1,
               (dir / "nope.mp4").string() + ": no such file", out);
}

TEST(CliBadInput, TextFileNamedMp4) {
  auto dir = scratch_dir("cli-text");
  auto in = dir / "notes.mp4";
  std::ofstream(in) << "this is not a video\n";
  auto out = dir / "out.mp4";
  expect_error(run_cli(quote(in.string()) + " --model lanczos -o " + quote(out.string())), 1,
               in.string(), out);
}

TEST(CliBadInput, TruncatedVideo) {
  auto dir = scratch_dir("cli-trunc");
  auto full = make_clip(dir / "full.mkv", "testsrc2=size=96x64:rate=24:duration=2",
                        "-c:v libx264 -pix_fmt yuv420p");
  std::string bytes = read_file(full);
  auto in = dir / "cut.mkv";
  std::ofstream(in, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  auto out = dir / "out.mkv";
  expect_error(run_cli(quote(in.string()) + " --model lanczos -o " + quote(out.string())), 1,
               in.string(), out);
}

TEST(CliBadInput, OutputExistsWithoutOverwrite) {
  auto dir = scratch_dir("cli-exists");
  auto in = make_clip(dir / "in.mp4", "testsrc2=size=64x48:rate=24:duration=0.5",
                      "-c:v libx264 -pix_fmt yuv420p");
  auto out = dir / "out.mp4";
  std::ofstream(out) << "keep me";
  auto r = run_cli(quote(in.string()) + " --model lanczos -o " + quote(out.string()));
  expect_error(r, 2, out.string());
  EXPECT_EQ(read_file(out), "keep me");
  // -y replaces it.
  r = run_cli(quote(in.string()) + " --model lanczos -y -o " + quote(out.string()));
  EXPECT_EQ(r.exit_status, 0) << r.stderr_text;
  EXPECT_NE(read_file(out), "keep me");
}

TEST(CliBadInput, OutputIsInput) {
  auto dir = scratch_dir("cli-same");
  auto in = make_clip(dir / "in.mp4", "testsrc2=size=64x48:rate=24:duration=0.5",
                      "-c:v libx264 -pix_fmt yuv420p");
  std::string before = read_file(in);
  auto r = run_cli(quote(in.string()) + " --model lanczos -y -o " +
                   quote((dir / "." / "in.mp4").string()));
  expect_error(r, 2, "output is the input");
  EXPECT_EQ(read_file(in), before);
}

TEST(CliBadInput, UnwritableFolder) {
  auto dir = scratch_dir("cli-ro");
  auto in = make_clip(dir / "in.mp4", "testsrc2=size=64x48:rate=24:duration=0.5",
                      "-c:v libx264 -pix_fmt yuv420p");
  auto ro = dir / "ro";
  fs::create_directories(ro);
  fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                          fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec);
  fs::permissions(dir, fs::perms::all, fs::perm_options::add);
  fs::permissions(in, fs::perms::others_read, fs::perm_options::add);
  auto out = ro / "out.mp4";
  // Root writes anywhere, so run as an unprivileged user where we are root.
  std::string prefix = getuid() == 0 ? "setpriv --reuid=65534 --regid=65534 --clear-groups " : "";
  auto r = run_command(prefix + quote(cli_path().string()) + " " + quote(in.string()) +
                       " --model lanczos -o " + quote(out.string()));
  expect_error(r, 1, "not writable", out);
}

TEST(CliBadInput, BadFlagValues) {
  auto in = sample_clip().string();
  expect_error(run_cli(quote(in) + " --hash-size 12"), 2, "hash_size");
  expect_error(run_cli(quote(in) + " --workers 0"), 2, "workers");
  expect_error(run_cli(quote(in) + " --crf lots"), 2, "crf");
  expect_error(run_cli(quote(in) + " --dedup sometimes"), 2, "dedup");
  expect_error(run_cli(quote(in) + " --device tpu"), 2, "device");
  expect_error(run_cli(quote(in) + " --frobnicate"), 2, "frobnicate");
}

TEST(CliBadInput, UnknownConfigKey) {
  auto dir = scratch_dir("cli-config");
  std::ofstream(dir / "upframe.toml") << "hash_size = 8\nturbo = true\n";
  auto r = run_command("cd " + quote(dir.string()) + " && " + quote(cli_path().string()) + " " +
                       quote(sample_clip().string()) + " -o out.mp4");
  expect_error(r, 2, "turbo", dir / "out.mp4");
  EXPECT_NE(r.stderr_text.find("upframe.toml"), std::string::npos);
}

// The sample clip end to end: stats that add up, audio kept, every frame written.
TEST(CliVideo, SampleClipStatsAddUp) {
  auto dir = scratch_dir("cli-sample");
  auto out = dir / "sample_x2.mp4";
  auto stats_file = dir / "stats.json";
  auto r = run_cli(quote(sample_clip().string()) + " --model lanczos -o " + quote(out.string()) +
                   " --stats " + quote(stats_file.string()));
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  auto stats = nlohmann::json::parse(read_file(stats_file));
  for (const char* key : {"extraction_time",
                          "detection_time",
                          "upscale_time",
                          "save_time",
                          "total_time",
                          "total_frames",
                          "unique_frames",
                          "duplicate_frames",
                          "duplicate_percentage",
                          "fps",
                          "mode",
                          "mode_reason",
                          "decode_backend",
                          "upscale_backend",
                          "workers",
                          "tile",
                          "precision",
                          "model",
                          "scale",
                          "input",
                          "output",
                          "upscale_busy_time"})
    EXPECT_TRUE(stats.contains(key)) << key;
  const int64_t total = stats["total_frames"];
  EXPECT_EQ(total, 72);
  EXPECT_EQ(stats["unique_frames"].get<int64_t>() + stats["duplicate_frames"].get<int64_t>(),
            total);
  // Drawn "on twos": every other frame repeats the one before.
  EXPECT_EQ(stats["duplicate_frames"].get<int64_t>(), 36);
  EXPECT_NEAR(stats["duplicate_percentage"].get<double>(), 50.0, 1e-9);
  EXPECT_NEAR(stats["fps"].get<double>(), total / stats["total_time"].get<double>(), 1e-6);
  EXPECT_EQ(stats["mode"], "pipeline");
  EXPECT_EQ(stats["scale"], 2);
  EXPECT_EQ(stats["output"], out.string());
  EXPECT_LE(stats["upscale_time"].get<double>(), stats["total_time"].get<double>());

  auto info = probe(out);
  int video = 0, audio = 0;
  for (const auto& s : info["streams"]) {
    if (s["codec_type"] == "video") {
      ++video;
      EXPECT_EQ(s["width"], 640);
      EXPECT_EQ(s["height"], 360);
      EXPECT_EQ(s["nb_read_frames"], "72");
      EXPECT_EQ(s["color_primaries"], "bt709");
    }
    if (s["codec_type"] == "audio") ++audio;
  }
  EXPECT_EQ(video, 1);
  EXPECT_EQ(audio, 1);
  EXPECT_NE(r.stderr_text.find("mode: pipeline"), std::string::npos) << r.stderr_text;
}

// Sequential and pipeline modes write identical frames (SPEC section 3), checked through
// lossless PNG frames, and the stats show they really ran different modes.
TEST(CliVideo, SequentialAndPipelineGiveIdenticalFrames) {
  auto dir = scratch_dir("cli-modes");
  auto run_mode = [&](const std::string& name, const std::string& flags) {
    auto out = dir / name;
    auto r = run_cli(quote(sample_clip().string()) + " --model lanczos --format png -o " +
                     quote(out.string() + "/") + " --stats " +
                     quote((dir / (name + ".json")).string()) + " " + flags);
    EXPECT_EQ(r.exit_status, 0) << r.stderr_text;
    return nlohmann::json::parse(read_file(dir / (name + ".json")));
  };
  auto pipe = run_mode("pipe", "--workers 2");
  auto seq = run_mode("seq", "--no-parallel");
  EXPECT_EQ(pipe["mode"], "pipeline");
  EXPECT_EQ(seq["mode"], "sequential");
  EXPECT_NE(seq["mode_reason"].get<std::string>().find("parallel"), std::string::npos);
  for (int i = 1; i <= 72; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "%08d.png", i);
    ASSERT_TRUE(fs::exists(dir / "pipe" / name)) << name;
    EXPECT_EQ(read_file(dir / "pipe" / name), read_file(dir / "seq" / name)) << name;
  }
  EXPECT_FALSE(fs::exists(dir / "pipe" / "00000073.png"));
  // Duplicates are copies of their source frame's file.
  EXPECT_EQ(read_file(dir / "pipe" / "00000001.png"), read_file(dir / "pipe" / "00000002.png"));
  EXPECT_NE(read_file(dir / "pipe" / "00000002.png"), read_file(dir / "pipe" / "00000003.png"));
  std::string csv = read_file(dir / "pipe" / "timestamps.csv");
  EXPECT_EQ(csv.rfind("index,pts_seconds", 0), 0u) << csv.substr(0, 40);
}

TEST(CliVideo, FlagsOverrideConfigAndModeFollowsFrameCount) {
  auto dir = scratch_dir("cli-override");
  std::ofstream(dir / "upframe.toml") << "pipeline_min_frames = 1000\nmodel = \"lanczos\"\n";
  auto run_in_dir = [&](const std::string& flags) {
    auto r = run_command("cd " + quote(dir.string()) + " && " + quote(cli_path().string()) + " " +
                         quote(sample_clip().string()) +
                         " -y -o out.mkv --encoder ffv1 --stats s.json " + flags);
    EXPECT_EQ(r.exit_status, 0) << r.stderr_text;
    EXPECT_NE(r.stderr_text.find("config file: upframe.toml"), std::string::npos);
    return nlohmann::json::parse(read_file(dir / "s.json"));
  };
  auto seq = run_in_dir("");
  EXPECT_EQ(seq["mode"], "sequential");
  EXPECT_NE(seq["mode_reason"].get<std::string>().find("pipeline_min_frames 1000"),
            std::string::npos);
  EXPECT_EQ(seq["model"], "lanczos");
  auto pipe = run_in_dir("--pipeline-min-frames 10");
  EXPECT_EQ(pipe["mode"], "pipeline");
}

TEST(CliVideo, ProgressJsonLines) {
  auto dir = scratch_dir("cli-progress");
  auto r = run_cli(quote(sample_clip().string()) + " --model lanczos --progress-json -o " +
                   quote((dir / "o.mp4").string()));
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  std::istringstream lines(r.stdout_text);
  std::string line;
  int count = 0;
  nlohmann::json last;
  while (std::getline(lines, line)) {
    last = nlohmann::json::parse(line);  // nothing but JSON on stdout
    for (const char* key :
         {"frames_done", "frames_total", "unique", "duplicates", "fps", "eta_s", "stage_busy"})
      EXPECT_TRUE(last.contains(key)) << line;
    ++count;
  }
  ASSERT_GE(count, 1);
  EXPECT_EQ(last["frames_done"], 72);
  EXPECT_EQ(last["frames_total"], 72);
  EXPECT_EQ(last["unique"].get<int>() + last["duplicates"].get<int>(), 72);
}

}  // namespace
}  // namespace upframe::test

namespace upframe::test {
namespace {

TEST(CliImage, ImageKeepsAlphaAndFormat) {
  auto dir = scratch_dir("cli-image");
  auto in = make_clip(dir / "in.png", "testsrc2=size=64x48,format=rgba", "-frames:v 1");
  auto r =
      run_cli(quote(in.string()) + " --model lanczos --stats " + quote((dir / "s.json").string()));
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  auto out = dir / "in_x2.png";  // default name beside the input
  auto info = probe(out);
  EXPECT_EQ(info["streams"][0]["width"], 128);
  EXPECT_EQ(info["streams"][0]["pix_fmt"], "rgba");
  auto stats = nlohmann::json::parse(read_file(dir / "s.json"));
  EXPECT_EQ(stats["total_frames"], 1);
  EXPECT_EQ(stats["unique_frames"], 1);
  // --format picks another image format; -o names a folder.
  fs::create_directories(dir / "big");
  r = run_cli(quote(in.string()) + " --model bicubic --scale 3 --format webp -o " +
              quote((dir / "big").string()));
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  info = probe(dir / "big" / "in_x3.webp");
  EXPECT_EQ(info["streams"][0]["codec_name"], "webp");
  EXPECT_EQ(info["streams"][0]["width"], 192);
}

TEST(CliImage, CorruptImageIsAnError) {
  auto dir = scratch_dir("cli-image-bad");
  auto in = dir / "broken.png";
  std::ofstream(in) << "\x89PNG not really";
  auto out = dir / "out.png";
  expect_error(run_cli(quote(in.string()) + " --model lanczos -o " + quote(out.string())), 1,
               in.string(), out);
}

// The shipped default model end to end on a tiny clip (the network is slow on a CPU).
TEST(CliVideo, DefaultModelUpscalesAClip) {
  auto dir = scratch_dir("cli-nn");
  auto in = make_clip(dir / "in.mp4", "testsrc2=size=48x32:rate=12:duration=0.5",
                      "-c:v libx264 -pix_fmt yuv420p");
  auto r = run_cli(quote(in.string()) + " -o " + quote((dir / "out.mkv").string()) +
                   " --encoder ffv1 --stats " + quote((dir / "s.json").string()));
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  auto stats = nlohmann::json::parse(read_file(dir / "s.json"));
  EXPECT_EQ(stats["model"], "realesr-animevideov3-x2");
  EXPECT_EQ(stats["scale"], 2);
  EXPECT_EQ(stats["precision"], "fp32");
  EXPECT_EQ(stats["total_frames"], 6);
  auto info = probe(dir / "out.mkv");
  EXPECT_EQ(info["streams"][0]["width"], 96);
  EXPECT_EQ(info["streams"][0]["nb_read_frames"], "6");
}

TEST(CliBadInput, ModelProblems) {
  auto dir = scratch_dir("cli-model");
  auto in = (source_dir() / "samples" / "sample.mp4").string();
  expect_error(run_cli(quote(in) + " --model no-such-model"), 2, "no-such-model");
  expect_error(run_cli(quote(in) + " --scale 5"), 2, "scale");
  // A corrupt copy of the shipped model: the .bin cut short.
  fs::copy_file(source_dir() / "models" / "realesr-animevideov3-x2.param", dir / "m.param");
  std::string bin = read_file(source_dir() / "models" / "realesr-animevideov3-x2.bin");
  std::ofstream(dir / "m.bin", std::ios::binary) << bin.substr(0, bin.size() / 2);
  auto out = dir / "o.mp4";
  expect_error(run_cli(quote(in) + " --model " + quote((dir / "m.param").string()) + " -o " +
                       quote(out.string())),
               1, "m.bin", out);
}

}  // namespace
}  // namespace upframe::test

namespace upframe::test {
namespace {

// `-o /dev/null` runs every stage and writes nothing (for benchmarks without an encoder).
TEST(CliVideo, NullOutputCountsFrames) {
  auto dir = scratch_dir("cli-null");
  auto r = run_cli(quote(sample_clip().string()) + " --model lanczos -o /dev/null --stats " +
                   quote((dir / "s.json").string()));
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  auto stats = nlohmann::json::parse(read_file(dir / "s.json"));
  EXPECT_EQ(stats["total_frames"], 72);
  EXPECT_EQ(stats["duplicate_frames"], 36);
  EXPECT_TRUE(fs::is_character_file("/dev/null"));
}

}  // namespace
}  // namespace upframe::test

namespace upframe::test {
namespace {

// The disk pre-flight refuses a target that cannot hold the estimated output, before any
// work, and --no-space-check skips it. Needs a small tmpfs (root).
TEST(CliBadInput, NotEnoughDiskSpace) {
  auto dir = scratch_dir("cli-disk");
  auto mnt = dir / "small";
  fs::create_directories(mnt);
  auto m = run_command("mount -t tmpfs -o size=256k tmpfs " + quote(mnt.string()));
  if (m.exit_status != 0) GTEST_SKIP() << "cannot mount a small tmpfs here: " << m.stderr_text;
  auto out = mnt / "out.mp4";
  auto r = run_cli(quote(sample_clip().string()) + " --model lanczos -o " + quote(out.string()));
  run_command("umount " + quote(mnt.string()));
  EXPECT_EQ(r.exit_status, 1) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find(out.string() + ": not enough disk space"), std::string::npos)
      << r.stderr_text;
  EXPECT_EQ(r.stderr_text.find("mode:"), std::string::npos) << "work started: " << r.stderr_text;
}

}  // namespace
}  // namespace upframe::test
