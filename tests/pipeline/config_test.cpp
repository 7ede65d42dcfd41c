#include <gtest/gtest.h>

#include <fstream>

#include "support/test_support.hpp"
#include "upframe/config.hpp"
#include "upframe/error.hpp"

namespace upframe {
namespace {

using test::scratch_dir;

std::filesystem::path write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path) << text;
  return path;
}

TEST(Config, DefaultsFollowSpecSection4) {
  Settings s;
  EXPECT_TRUE(s.enable_gpu_pipeline);
  EXPECT_EQ(s.pipeline_min_frames, 50);
  EXPECT_TRUE(s.parallel);
  EXPECT_TRUE(s.skip_duplicates);
  EXPECT_TRUE(s.reuse_tiles);  // tile reuse is on with --skip-duplicates
  EXPECT_EQ(s.hash_size, 8);
  EXPECT_EQ(s.preload_frames, 3);
  EXPECT_EQ(get_setting(s, "workers"), "auto");
  EXPECT_EQ(s.device, "auto");
  EXPECT_EQ(get_setting(s, "tile"), "auto");
  EXPECT_EQ(s.encoder, "auto");
  EXPECT_EQ(s.crf, 18);
  EXPECT_EQ(s.dedup, "consecutive");
  EXPECT_EQ(s.dedup_window, 32);
}

TEST(Config, EveryKeyHasAFlagOfTheSameName) {
  for (const SettingSpec& spec : setting_specs()) {
    std::string flag = flag_name(spec);
    std::string back = flag.substr(2);
    for (char& c : back)
      if (c == '-') c = '_';
    EXPECT_EQ(back, spec.key);
  }
  EXPECT_NE(find_setting("hash_size"), nullptr);
  EXPECT_EQ(flag_name(*find_setting("pipeline_min_frames")), "--pipeline-min-frames");
}

TEST(Config, TomlFileSetsValues) {
  auto dir = scratch_dir("config");
  auto file =
      write_file(dir / "u.toml",
                 "enable_gpu_pipeline = false\npipeline_min_frames = 10\n"
                 "parallel = false\nskip_duplicates = false\nreuse_tiles = false\nhash_size = 16\n"
                 "preload_frames = 5\nworkers = 3\ndevice = \"cpu\"\ntile = 128\n"
                 "encoder = \"ffv1\"\ncrf = 23\ndedup = \"global\"\n"
                 "dedup_max_block_diff = 4.5\n");
  Settings s;
  apply_config_file(s, file);
  EXPECT_FALSE(s.enable_gpu_pipeline);
  EXPECT_EQ(s.pipeline_min_frames, 10);
  EXPECT_FALSE(s.parallel);
  EXPECT_FALSE(s.skip_duplicates);
  EXPECT_FALSE(s.reuse_tiles);
  EXPECT_EQ(s.hash_size, 16);
  EXPECT_EQ(s.preload_frames, 5);
  EXPECT_EQ(s.workers, 3);
  EXPECT_EQ(s.device, "cpu");
  EXPECT_EQ(s.tile, 128);
  EXPECT_EQ(s.encoder, "ffv1");
  EXPECT_EQ(s.crf, 23);
  EXPECT_EQ(s.dedup, "global");
  EXPECT_DOUBLE_EQ(s.dedup_max_block_diff, 4.5);
  // "auto" strings where a number is also allowed.
  apply_config_file(s, write_file(dir / "auto.toml", "workers = \"auto\"\ntile = \"auto\"\n"));
  EXPECT_EQ(s.workers, 0);
  EXPECT_EQ(s.tile, -1);
}

void expect_usage_error(const std::filesystem::path& file, const std::string& must_name) {
  Settings s;
  try {
    apply_config_file(s, file);
    FAIL() << "no error for " << file;
  } catch (const UsageError& e) {
    EXPECT_EQ(e.code(), ExitCode::kUsage);
    EXPECT_NE(std::string(e.what()).find(file.string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(must_name), std::string::npos) << e.what();
  }
}

TEST(Config, UnknownKeysAndBadValuesNameTheKey) {
  auto dir = scratch_dir("config-bad");
  expect_usage_error(write_file(dir / "a.toml", "hash_sise = 8\n"), "hash_sise");
  expect_usage_error(write_file(dir / "b.toml", "hash_size = 12\n"), "hash_size");
  expect_usage_error(write_file(dir / "c.toml", "workers = -2\n"), "workers");
  expect_usage_error(write_file(dir / "d.toml", "device = \"tpu\"\n"), "device");
  expect_usage_error(write_file(dir / "e.toml", "parallel = \"yes\"\n"), "parallel");
  expect_usage_error(write_file(dir / "f.toml", "crf = 99\n"), "crf");
  expect_usage_error(write_file(dir / "g.toml", "pipeline_min_frames = [1]\n"),
                     "pipeline_min_frames");
  expect_usage_error(write_file(dir / "h.toml", "this is not toml\n"), "line 1");
  expect_usage_error(dir / "missing.toml", "not found");
}

TEST(Config, SetSettingValidatesFlagValues) {
  Settings s;
  EXPECT_THROW(set_setting(s, "scale", "two", "command line"), UsageError);
  EXPECT_THROW(set_setting(s, "quality", "0", "command line"), UsageError);
  EXPECT_THROW(set_setting(s, "format", "gif", "command line"), UsageError);
  EXPECT_THROW(set_setting(s, "nonsense", "1", "command line"), UsageError);
  set_setting(s, "scale", "4", "command line");
  EXPECT_EQ(s.scale, 4);
  set_setting(s, "hash_size", "32", "command line");
  EXPECT_EQ(s.hash_size, 32);
}

// The problem text of set_setting's error (empty if it did not throw).
std::string set_error(const std::string& key, const std::string& value, const std::string& origin) {
  Settings s;
  try {
    set_setting(s, key, value, origin);
  } catch (const UsageError& e) {
    return e.what();
  }
  return {};
}

TEST(Config, ScaleZeroAndOtherNonsenseAreRefusedNamingFlagOrKey) {
  EXPECT_EQ(set_error("scale", "0", kCommandLine),
            "command line: bad value for --scale: '0' is outside 1..16");
  EXPECT_EQ(set_error("scale", "0", "u.toml"),
            "u.toml: bad value for 'scale': '0' is outside 1..16");
  EXPECT_EQ(set_error("workers", "-1", kCommandLine),
            "command line: bad value for --workers: '-1' is outside 1..256 (or auto)");
  EXPECT_EQ(set_error("hash_size", "12", "u.toml"),
            "u.toml: bad value for 'hash_size': '12' is not one of 8, 16, 32");
  EXPECT_EQ(set_error("scale", "16", kCommandLine), "");
  EXPECT_EQ(set_error("scale", "1", kCommandLine), "");  // lanczos and bicubic can
}

TEST(Config, CrfIsCheckedAgainstTheEncoder) {
  Settings s;
  s.crf = 51;
  EXPECT_NO_THROW(validate_settings(s));
  s.crf = 52;
  EXPECT_THROW(validate_settings(s), UsageError);  // auto: x264, x265 or NVENC
  for (const char* encoder : {"libx264", "libx265", "h264_nvenc", "hevc_nvenc"}) {
    s.encoder = encoder;
    EXPECT_THROW(validate_settings(s), UsageError) << encoder;
  }
  s.crf = 63;
  for (const char* encoder : {"libsvtav1", "ffv1"}) {
    s.encoder = encoder;
    EXPECT_NO_THROW(validate_settings(s)) << encoder;
  }
}

TEST(Config, DefaultTextIsReadable) {
  EXPECT_EQ(default_text("scale"), "2, or a model file's own");
  EXPECT_EQ(default_text("precision"), "auto");
  EXPECT_EQ(default_text("strict"), "off");
  EXPECT_EQ(default_text("workers"), "auto");
  EXPECT_EQ(default_text("tile"), "auto");
  EXPECT_EQ(default_text("crf"), "18");
  EXPECT_EQ(default_text("parallel"), "on");
  EXPECT_EQ(default_text("resume"), "off");
  for (const char* key : {"dedup_max_mean_diff", "dedup_max_signed_mean_diff",
                          "dedup_max_block_diff", "dedup_max_motion"}) {
    const std::string text = default_text(key);
    EXPECT_GT(std::stod(text), 0) << key << ": " << text;
    EXPECT_EQ(text.find("000"), std::string::npos) << key << ": " << text;
  }
  // get_setting reads back through set_setting, doubles without trailing zeros.
  Settings s;
  set_setting(s, "dedup_max_block_diff", "4.5", kCommandLine);
  EXPECT_EQ(get_setting(s, "dedup_max_block_diff"), "4.5");
  EXPECT_EQ(get_setting(Settings{}, "dedup_max_motion"), "-1");
}

}  // namespace
}  // namespace upframe
