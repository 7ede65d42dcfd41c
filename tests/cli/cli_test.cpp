// The real `upframe` program on real files: bad input (docs/INTERFACE.md, "Bad input"), outputs, stats,
// mode selection and progress. Uses --model lanczos where the network is not the point,
// so the suite stays fast on two cores.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "support/synth.hpp"
#include "support/test_support.hpp"
#include "upframe/config.hpp"

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
  for (const char* flag :
       {"--hash-size", "--pipeline-min-frames", "--no-parallel", "--dedup", "--workers", "--tile",
        "--precision", "--stats", "--no-space-check", "--enable-gpu-pipeline",
        "--no-skip-duplicates", "--no-reuse-tiles", "--preload-frames"})
    EXPECT_NE(r.stdout_text.find(flag), std::string::npos) << flag;
  EXPECT_NE(r.stdout_text.find("default: 50"), std::string::npos);
}

// The help entry of `flag`: from the flag to the next option's line.
std::string help_entry(const std::string& help, const std::string& flag) {
  size_t at = help.find("  " + flag + " ");
  if (at == std::string::npos) at = help.find(", " + flag + " ");
  if (at == std::string::npos) at = help.find(flag);
  if (at == std::string::npos) return {};
  size_t end = help.find("\n  -", at);
  return help.substr(at, end == std::string::npos ? std::string::npos : end - at);
}

// Each value's form (choices, range, N|auto) after its flag, and every default as a user reads
// it: words for the values decided later, integers without decimals, no "-1.000000".
TEST(Cli, HelpShowsChoicesAndReadableDefaults) {
  auto r = run_cli("--help");
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  const std::string& help = r.stdout_text;
  for (const char* text :
       {"--device auto|cpu|cuda", "--precision fp32|bf16|fp16|auto", "--dedup consecutive|global",
        "--hash-size 8|16|32", "--format png|jpg|webp", "--workers N|auto", "--tile N|auto",
        "--scale 1..16", "--crf 0..63", "--quality 1..100", "--encoder auto|libx264",
        "--parallel,--no-parallel ", "--model NAME", "-o,--output PATH", "--config FILE"})
    EXPECT_NE(help.find(text), std::string::npos) << text << "\n" << help;
  const std::vector<std::pair<std::string, std::string>> defaults = {
      {"--device", "[default: auto]"},
      {"--precision", "[default: auto]"},
      {"--strict", "[default: off]"},
      {"--scale", "[default: 2, or a model file's own]"},
      {"--model", "[default: realesr-animevideov3]"},
      {"--workers", "[default: auto]"},
      {"--tile", "[default: auto]"},
      {"--crf", "[default: 18]"},
      {"--quality", "[default: 95]"},
      {"--hash-size", "[default: 8]"},
      {"--dedup", "[default: consecutive]"},
      {"--pipeline-min-frames", "[default: 50]"},
      {"--parallel", "[default: on]"},
      {"--resume", "[default: off]"},
      {"--format", "[default: the output's extension]"},
      {"--output", "[default: NAME_x{scale}.EXT beside the input]"}};
  for (const auto& [flag, text] : defaults)
    EXPECT_NE(help_entry(help, flag).find(text), std::string::npos)
        << flag << ": " << help_entry(help, flag);
  // The confirmation thresholds show the detector's own values, not the -1 that stands for them.
  for (const char* flag : {"--dedup-max-mean-diff", "--dedup-max-signed-mean-diff",
                           "--dedup-max-block-diff", "--dedup-max-motion"})
    EXPECT_TRUE(
        std::regex_search(help_entry(help, flag), std::regex(R"(\[default: [0-9]+(\.[0-9]+)?\])")))
        << help_entry(help, flag);
  // Every setting shows its default; none as a six-decimal float or a negative stand-in.
  for (const SettingSpec& spec : setting_specs())
    EXPECT_NE(help_entry(help, flag_name(spec)).find("[default: "), std::string::npos)
        << flag_name(spec) << ": " << help_entry(help, flag_name(spec));
  EXPECT_FALSE(std::regex_search(help, std::regex(R"([0-9]\.[0-9]{6})"))) << help;
  EXPECT_EQ(help.find("default: -"), std::string::npos) << help;
  EXPECT_EQ(help.find("{false}"), std::string::npos) << help;
}

// Exactly one line `upframe: error: ...` (info lines aside), naming `names`; exit status 2;
// nothing at `output` nor beside it.
void expect_one_usage_error(const CommandResult& r, const std::string& names,
                            const fs::path& output, const std::string& what) {
  EXPECT_EQ(r.exit_status, 2) << what << "\n" << r.stderr_text;
  std::istringstream lines(r.stderr_text);
  int errors = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("upframe: error: ", 0) == 0)
      ++errors;
    else
      EXPECT_EQ(line.rfind("upframe: info: ", 0), 0u) << what << ": unexpected line: " << line;
  }
  EXPECT_EQ(errors, 1) << what << "\n" << r.stderr_text;
  EXPECT_NE(r.stderr_text.find(names), std::string::npos) << what << "\n" << r.stderr_text;
  EXPECT_FALSE(fs::exists(output)) << what;
  for (const auto& e : fs::directory_iterator(output.parent_path()))
    EXPECT_EQ(e.path().filename().string().find("upframe-"), std::string::npos)
        << what << ": " << e.path();
}

// Scales the model cannot give and numbers out of range, as flags and as config keys: one
// error line naming the setting, the value and what is allowed; status 2; nothing written.
TEST(CliBadInput, ScaleAndNumbersOutOfRange) {
  auto dir = scratch_dir("cli-values");
  auto in = make_clip(dir / "in.mp4", "testsrc2=size=64x48:rate=24:duration=0.5",
                      "-c:v libx264 -pix_fmt yuv420p");
  fs::copy_file(source_dir() / "models" / "realesr-animevideov3-x2.param", dir / "m.param");
  fs::copy_file(source_dir() / "models" / "realesr-animevideov3-x2.bin", dir / "m.bin");
  auto out = dir / "out.mkv";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--scale 0", "bad value for --scale: '0' is outside 1..16"},
      {"--scale -2", "bad value for --scale: '-2' is outside 1..16"},
      {"--scale 17 --model lanczos", "bad value for --scale: '17' is outside 1..16"},
      {"--scale 5", "model realesr-animevideov3 cannot give --scale 5 (it has x2, x3, x4)"},
      {"--scale 1", "model realesr-animevideov3 cannot give --scale 1 (it has x2, x3, x4)"},
      {"--scale 4 --model " + quote((dir / "m.param").string()),
       "the model upscales x2 and cannot give --scale 4"},
      {"--workers -1", "bad value for --workers: '-1' is outside 1..256 (or auto)"},
      {"--workers 0", "bad value for --workers: '0' is outside 1..256 (or auto)"},
      {"--tile -5", "bad value for --tile: '-5' is outside 0..65536 (or auto)"},
      {"--crf 64", "bad value for --crf: '64' is outside 0..63"},
      {"--crf -1", "bad value for --crf: '-1' is outside 0..63"},
      {"--crf 52 --encoder libx264", "crf: 52 is outside 0..51, the range of encoder libx264"},
      {"--crf 60", "crf: 60 is outside 0..51, the range of encoder auto"},
      {"--hash-size 12", "bad value for --hash-size: '12' is not one of 8, 16, 32"},
      {"--quality 0", "bad value for --quality: '0' is outside 1..100"},
      {"--quality 101", "bad value for --quality: '101' is outside 1..100"},
      {"--preload-frames 0", "bad value for --preload-frames: '0' is outside 1..256"},
      {"--dedup-window 0", "bad value for --dedup-window: '0' is outside 1..4096"},
      {"--hash-threshold -1", "bad value for --hash-threshold: '-1' is outside 0..1024"},
      {"--segment-frames 0", "bad value for --segment-frames: '0' is outside 1..1073741824"},
      {"--dedup-max-motion nan", "bad value for --dedup-max-motion: 'nan' is not a number"},
  };
  for (const auto& [args, names] : cases)
    expect_one_usage_error(run_cli(quote(in.string()) + " -o " + quote(out.string()) + " " + args),
                           names, out, args);
  // A valid run with an accepted scale still works (the rule is not too strict).
  auto r = run_cli(quote(in.string()) + " --model lanczos --scale 3 -o " + quote(out.string()));
  EXPECT_EQ(r.exit_status, 0) << r.stderr_text;
  fs::remove(out);

  // The same rules for config keys, named as keys with the file.
  auto config = dir / "c.toml";
  const std::vector<std::pair<std::string, std::string>> config_cases = {
      {"scale = 0", "c.toml: bad value for 'scale': '0' is outside 1..16"},
      {"scale = 5", "cannot give --scale 5 (it has x2, x3, x4)"},
      {"workers = -1", "c.toml: bad value for 'workers': '-1' is outside 1..256 (or auto)"},
      {"crf = 70", "c.toml: bad value for 'crf': '70' is outside 0..63"},
      {"crf = 55\nencoder = \"libx265\"", "crf: 55 is outside 0..51, the range of encoder libx265"},
      {"hash_size = 12", "c.toml: bad value for 'hash_size': '12' is not one of 8, 16, 32"},
      {"quality = 0", "c.toml: bad value for 'quality': '0' is outside 1..100"},
      {"tile = -3", "c.toml: bad value for 'tile': '-3' is outside 0..65536 (or auto)"},
  };
  for (const auto& [text, names] : config_cases) {
    std::ofstream(config) << text << "\n";
    expect_one_usage_error(run_cli(quote(in.string()) + " --config " + quote(config.string()) +
                                   " -o " + quote(out.string())),
                           names, out, text);
  }
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
  expect_error(run_cli(quote(in) + " --hash-size 12"), 2, "--hash-size");
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
                          "damaged_frames",
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

// Sequential and pipeline modes write identical frames (docs/INTERFACE.md, "Mode selection"), checked through
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
    for (const char* key : {"frames_done", "frames_total", "unique", "duplicates", "fps", "eta_s",
                            "stage_busy", "tiles_reused", "tiles_computed"})
      EXPECT_TRUE(last.contains(key)) << line;
    ++count;
  }
  ASSERT_GE(count, 1);
  EXPECT_EQ(last["frames_done"], 72);
  EXPECT_EQ(last["frames_total"], 72);
  EXPECT_EQ(last["unique"].get<int>() + last["duplicates"].get<int>(), 72);
  EXPECT_EQ(last["tiles_reused"], 0);  // lanczos is not a network: no tile reuse
}

// Tile reuse through the CLI with the shipped model: on by default with its counters in the
// stats and the progress JSON, off with --no-reuse-tiles (and then every tile is computed).
TEST(CliVideo, TileReuseCountersAndItsSwitch) {
  auto dir = scratch_dir("cli-tile-reuse");
  synth::ClipSpec spec;
  spec.width = 256;
  spec.height = 144;
  spec.frames = 4;
  std::vector<Frame> frames;
  for (const Frame& f : synth::moving_object_clip(spec, 8, 4, 80)) {
    frames.push_back(f.clone());
    frames.push_back(f.clone());
  }
  const auto clip = dir / "sprite.mp4";
  synth::encode_clip(clip, frames);
  const auto stats_of = [&](const std::string& flags, nlohmann::json* last_progress) {
    auto r =
        run_cli(quote(clip.string()) + " --device cpu --progress-json -y " + flags + " --stats " +
                quote((dir / "s.json").string()) + " -o " + quote((dir / "o.mp4").string()));
    EXPECT_EQ(r.exit_status, 0) << r.stderr_text;
    std::istringstream lines(r.stdout_text);
    for (std::string line; std::getline(lines, line);) *last_progress = nlohmann::json::parse(line);
    return nlohmann::json::parse(read_file(dir / "s.json"));
  };
  nlohmann::json progress_on, progress_off;
  const nlohmann::json on = stats_of("", &progress_on);
  EXPECT_TRUE(on["tile_reuse"].get<bool>());
  EXPECT_GT(on["tiles_reused"].get<int>(), 0);
  EXPECT_GT(on["tiles_computed"].get<int>(), 0);
  // 4 unique frames of 4 x 3 tiles.
  EXPECT_EQ(on["tiles_reused"].get<int>() + on["tiles_computed"].get<int>(), 4 * 12);
  EXPECT_GE(on["tile_compare_time"].get<double>(), 0);
  EXPECT_EQ(progress_on["tiles_reused"], on["tiles_reused"]);
  EXPECT_EQ(progress_on["tiles_computed"], on["tiles_computed"]);
  const nlohmann::json off = stats_of("--no-reuse-tiles", &progress_off);
  EXPECT_FALSE(off["tile_reuse"].get<bool>());
  EXPECT_EQ(off["tiles_reused"], 0);
  EXPECT_EQ(progress_off["tiles_reused"], 0);
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
  // The default precision is auto: one info line says which it chose (bf16 where the CPU has
  // avx512_bf16 or AMX, else fp32), and the stats agree.
  std::smatch chosen;
  const std::regex auto_line("upframe: info: precision auto: (bf16|fp32), since this CPU");
  ASSERT_TRUE(std::regex_search(r.stderr_text, chosen, auto_line)) << r.stderr_text;
  EXPECT_EQ(stats["precision"], chosen[1].str());
  EXPECT_EQ(r.stderr_text.find("precision auto", chosen.position(0) + chosen.length(0)),
            std::string::npos)
      << "one line only:\n"
      << r.stderr_text;
  // Without a GPU, neither the decoder nor the upscaler says it uses none.
  if (!fs::exists("/dev/nvidia0")) {
    EXPECT_EQ(r.stderr_text.find("GPU"), std::string::npos) << r.stderr_text;
  }
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

// What a new user meets first on a machine without a GPU: no line about the GPU it does not
// have, while asking for CUDA still gets a clear error.
TEST(CliFirstRun, NoGpuNoGpuLine) {
  if (fs::exists("/dev/nvidia0")) GTEST_SKIP() << "a GPU is present here: the line is news there";
  auto dir = scratch_dir("cli-no-gpu");
  auto in = make_clip(dir / "in.png", "testsrc2=size=24x16", "-frames:v 1");
  auto r = run_cli(quote(in.string()) + " -o " + quote((dir / "out.png").string()));
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  EXPECT_EQ(r.stderr_text.find("GPU"), std::string::npos) << r.stderr_text;
  EXPECT_EQ(r.stderr_text.find("CUDA"), std::string::npos) << r.stderr_text;
  EXPECT_TRUE(fs::exists(dir / "out.png"));
  auto out = dir / "cuda.png";
  r = run_cli(quote(in.string()) + " --device cuda -o " + quote(out.string()));
  expect_error(r, 2, "device cuda is not available", out);
  EXPECT_NE(r.stderr_text.find("use --device cpu or auto"), std::string::npos) << r.stderr_text;
}

// A mistyped flag: one error line with the flag it probably meant, exit 2; in `plan` (parsed
// by the same code) too.
TEST(CliFirstRun, MistypedFlagGetsDidYouMean) {
  auto r = run_cli(quote(sample_clip().string()) + " --scael 4");
  EXPECT_EQ(r.exit_status, 2) << r.stderr_text;
  EXPECT_EQ(r.stderr_text, "upframe: error: unknown option --scael: did you mean --scale?\n");
  r = run_cli(quote(sample_clip().string()) + " --hash-sise=16");
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_NE(r.stderr_text.find("did you mean --hash-size?"), std::string::npos) << r.stderr_text;
  r = run_cli("plan " + quote(sample_clip().string()) + " --segmnets 2");
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_NE(r.stderr_text.find("did you mean --segments?"), std::string::npos) << r.stderr_text;
  // Nothing near: CLI11's own line, no guess.
  r = run_cli(quote(sample_clip().string()) + " --zzzzzzzzzzzz");
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_EQ(r.stderr_text.find("did you mean"), std::string::npos) << r.stderr_text;
}

// `plan` is parsed like the rest: --help lists its own flags and every setting flag, a bad
// value of its own flag is one error line.
TEST(CliFirstRun, PlanParsedLikeTheRest) {
  auto r = run_cli("plan --help");
  EXPECT_EQ(r.exit_status, 0) << r.stderr_text;
  for (const char* text : {"--segments N", "--segment-seconds S", "--job-folder DIR",
                           "--device auto|cpu|cuda", "--config FILE", "--strict"})
    EXPECT_NE(r.stdout_text.find(text), std::string::npos) << text << "\n" << r.stdout_text;
  r = run_cli("plan " + quote(sample_clip().string()) + " --segments 0");
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_NE(r.stderr_text.find("upframe: error: --segments"), std::string::npos) << r.stderr_text;
  r = run_cli("plan " + quote(sample_clip().string()) + " --segments two");
  EXPECT_EQ(r.exit_status, 2);
  EXPECT_NE(r.stderr_text.find("--segments"), std::string::npos) << r.stderr_text;
}

// A model file that is not there is exit 2, as an unknown model name is.
TEST(CliFirstRun, MissingModelFileIsUsageError) {
  auto dir = scratch_dir("cli-missing-model");
  auto in = sample_clip().string();
  auto out = dir / "o.mp4";
  expect_error(run_cli(quote(in) + " --model " + quote((dir / "absent.param").string()) + " -o " +
                       quote(out.string())),
               2, (dir / "absent.param").string() + ": model file not found", out);
  fs::copy_file(source_dir() / "models" / "realesr-animevideov3-x2.param", dir / "m.param");
  expect_error(run_cli(quote(in) + " --model " + quote((dir / "m.param").string()) + " -o " +
                       quote(out.string())),
               2, (dir / "m.bin").string() + ": model weights file not found", out);
}

// --help names both shipped models and what each is for.
TEST(CliFirstRun, HelpNamesBothModels) {
  auto r = run_cli("--help");
  ASSERT_EQ(r.exit_status, 0);
  EXPECT_NE(r.stdout_text.find("realesr-animevideov3 (anime / video"), std::string::npos)
      << r.stdout_text;
  EXPECT_NE(r.stdout_text.find("realesr-general-x4v3 (photos"), std::string::npos) << r.stdout_text;
}

}  // namespace
}  // namespace upframe::test
