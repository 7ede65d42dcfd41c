// Folder input (docs/INTERFACE.md, "Batch"): every image and video, names and sub-folders kept,
// a bad file reported without stopping the others, stats with one entry per file.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "support/test_support.hpp"

namespace upframe::test {
namespace {

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

void ffmpeg(const std::string& args) {
  auto r = run_command("ffmpeg -hide_banner -loglevel error -y " + args);
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
}

// in/a.png, in/v.mp4, in/bad.mp4 (text), in/notes.txt, in/sub/c.jpg
fs::path make_folder(const fs::path& dir) {
  fs::path in = dir / "in";
  fs::create_directories(in / "sub");
  ffmpeg("-f lavfi -i testsrc2=size=64x48 -frames:v 1 " + quote((in / "a.png").string()));
  ffmpeg("-f lavfi -i testsrc2=size=64x48 -frames:v 1 " + quote((in / "sub" / "c.jpg").string()));
  ffmpeg("-f lavfi -i testsrc2=size=64x48:rate=24:duration=0.5 -pix_fmt yuv420p " +
         quote((in / "v.mp4").string()));
  std::ofstream(in / "bad.mp4") << "not a video";
  std::ofstream(in / "notes.txt") << "ignored";
  return in;
}

TEST(CliBatch, RecursiveFolderGoesOnPastABadFile) {
  auto dir = scratch_dir("batch");
  auto in = make_folder(dir);
  auto out = dir / "out";
  auto r = run_cli(quote(in.string()) + " --model lanczos --recursive -o " + quote(out.string()) +
                   " --stats " + quote((dir / "s.json").string()));
  EXPECT_EQ(r.exit_status, 3) << r.stderr_text;
  EXPECT_TRUE(fs::exists(out / "a.png"));
  EXPECT_TRUE(fs::exists(out / "sub" / "c.jpg"));
  EXPECT_TRUE(fs::exists(out / "v.mp4"));
  EXPECT_FALSE(fs::exists(out / "bad.mp4"));
  EXPECT_FALSE(fs::exists(out / "notes.txt"));
  auto stats = read_json(dir / "s.json");
  ASSERT_EQ(stats["files"].size(), 4u);
  int failed = 0;
  for (const auto& f : stats["files"]) {
    for (const char* key : {"input", "output", "status", "error", "stats"})
      EXPECT_TRUE(f.contains(key)) << key;
    if (f["status"] == "failed") {
      ++failed;
      EXPECT_NE(f["input"].get<std::string>().find("bad.mp4"), std::string::npos);
      EXPECT_NE(f["error"].get<std::string>().find("bad.mp4"), std::string::npos);
    } else {
      EXPECT_GE(f["stats"]["total_frames"].get<int>(), 1);
    }
  }
  EXPECT_EQ(failed, 1);
  EXPECT_EQ(stats["totals"]["files"], 4);
  EXPECT_EQ(stats["totals"]["failed"], 1);
  EXPECT_EQ(stats["totals"]["total_frames"].get<int>(),
            2 + stats["files"][3]["stats"]["total_frames"].get<int>());
}

TEST(CliBatch, NotRecursiveSkipsSubFoldersAndAllGoodExitsZero) {
  auto dir = scratch_dir("batch-flat");
  auto in = make_folder(dir);
  fs::remove(in / "bad.mp4");
  auto out = dir / "out";
  auto r = run_cli(quote(in.string()) + " --model lanczos -o " + quote(out.string()));
  EXPECT_EQ(r.exit_status, 0) << r.stderr_text;
  EXPECT_TRUE(fs::exists(out / "a.png"));
  EXPECT_FALSE(fs::exists(out / "sub"));
}

TEST(CliBatch, OutputFolderInsideInputIsNotScanned) {
  auto dir = scratch_dir("batch-inside");
  auto in = make_folder(dir);
  fs::remove(in / "bad.mp4");
  auto r = run_cli(quote(in.string()) + " --model lanczos --recursive -o " +
                   quote((in / "big").string()) + " --stats " + quote((dir / "s.json").string()));
  EXPECT_EQ(r.exit_status, 0) << r.stderr_text;
  EXPECT_EQ(read_json(dir / "s.json")["files"].size(), 3u);
  EXPECT_FALSE(fs::exists(in / "big" / "big"));
}

TEST(CliBatch, TwoInputsForOneOutputFailBeforeAnyWork) {
  auto dir = scratch_dir("batch-clash");
  fs::path in = dir / "in";
  fs::create_directories(in);
  ffmpeg("-f lavfi -i testsrc2=size=32x32 -frames:v 1 " + quote((in / "a.png").string()));
  ffmpeg("-f lavfi -i testsrc2=size=32x32 -frames:v 1 " + quote((in / "a.jpg").string()));
  auto out = dir / "out";
  auto r = run_cli(quote(in.string()) + " --model lanczos --format webp -o " + quote(out.string()));
  EXPECT_EQ(r.exit_status, 2) << r.stderr_text;
  EXPECT_NE(r.stderr_text.find("a.webp"), std::string::npos) << r.stderr_text;
  EXPECT_FALSE(fs::exists(out / "a.webp"));
}

}  // namespace
}  // namespace upframe::test

namespace upframe::test {
namespace {

TEST(CliBatch, ResumeSkipsCompleteOutputs) {
  auto dir = scratch_dir("batch-resume");
  auto in = make_folder(dir);
  fs::remove(in / "bad.mp4");
  auto out = dir / "out";
  auto r = run_cli(quote(in.string()) + " --model lanczos -o " + quote(out.string()));
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  auto before = fs::last_write_time(out / "v.mp4");
  r = run_cli(quote(in.string()) + " --model lanczos --resume -o " + quote(out.string()) +
              " --stats " + quote((dir / "s.json").string()));
  EXPECT_EQ(r.exit_status, 0) << r.stderr_text;
  auto stats = read_json(dir / "s.json");
  EXPECT_EQ(stats["totals"]["skipped"], 2);
  for (const auto& f : stats["files"]) EXPECT_EQ(f["status"], "skipped");
  EXPECT_EQ(fs::last_write_time(out / "v.mp4"), before);
}

}  // namespace
}  // namespace upframe::test
