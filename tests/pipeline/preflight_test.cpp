// Disk pre-flight: the estimate's arithmetic (docs/INTERFACE.md), the comparison, the check on
// a real (tiny tmpfs) file system, and the estimate against a real upscaled encode.
#include "upframe/pipeline/preflight.hpp"

#include <gtest/gtest.h>
#include <sys/mount.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>

#include "support/test_support.hpp"
#include "upframe/error.hpp"
#include "upframe/media/decoder.hpp"

namespace upframe {
namespace {

using test::quote;
using test::run_command;
using test::scratch_dir;
namespace fs = std::filesystem;

// 640x360 at 25 fps, 10 s, 250 frames, 1 Mbit/s of video in a 1.5 MB file (0.25 MB of audio).
VideoInfo clip_info() {
  VideoInfo info;
  info.width = 640;
  info.height = 360;
  info.avg_frame_rate = AVRational{25, 1};
  info.frame_count = 250;
  info.duration_seconds = 10;
  info.bit_rate = 1'000'000;
  info.bit_depth = 8;
  return info;
}

TEST(DiskPreflight, VideoIsBitrateTimesDurationTimesScaleSquaredPlusCopiedStreams) {
  OutputEstimate e = estimate_output(clip_info(), 1'500'000, 2, OutputKind::kVideo, "");
  ASSERT_TRUE(e.known);
  // 1.25 MB of video x 4, plus the 0.25 MB of other streams copied as they are.
  EXPECT_EQ(e.output_bytes, 5'000'000u + 250'000u);
  // Segments plus the joined file: the video is on disk twice at the join.
  EXPECT_EQ(e.peak_bytes, e.output_bytes + 5'000'000u);
  EXPECT_EQ(estimate_output_bytes(clip_info(), 1'500'000, 2, OutputKind::kVideo, ""), e.peak_bytes);
  // x4: 16 times the video.
  EXPECT_EQ(estimate_output(clip_info(), 1'500'000, 4, OutputKind::kVideo, "").output_bytes,
            20'000'000u + 250'000u);
}

TEST(DiskPreflight, VideoWithoutStreamBitrateUsesTheFileSize) {
  VideoInfo info = clip_info();
  info.bit_rate = 0;
  OutputEstimate e = estimate_output(info, 1'000'000, 2, OutputKind::kVideo, "");
  EXPECT_EQ(e.output_bytes, 4'000'000u);  // all of the file counts as video
  // Neither duration nor frame count known: still file size x scale².
  info.duration_seconds = 0;
  info.frame_count = -1;
  e = estimate_output(info, 1'000'000, 3, OutputKind::kVideo, "");
  EXPECT_TRUE(e.known);
  EXPECT_EQ(e.output_bytes, 9'000'000u);
  // A stream bitrate above what the file holds is not believed past the file size.
  info = clip_info();
  info.bit_rate = 50'000'000;
  EXPECT_EQ(estimate_output(info, 1'000'000, 2, OutputKind::kVideo, "").output_bytes, 4'000'000u);
}

TEST(DiskPreflight, HighBitrateInputIsCappedAtLossyBitsPerPixel) {
  VideoInfo info = clip_info();
  info.bit_rate = 100'000'000;  // 125 MB of video in 10 s
  OutputEstimate e = estimate_output(info, 130'000'000, 2, OutputKind::kVideo, "");
  double cap = 1280.0 * 720 * 250 * kMaxLossyBitsPerPixel / 8;  // 28.8 MB
  EXPECT_EQ(e.output_bytes, uint64_t(cap) + 5'000'000u);
  EXPECT_EQ(e.peak_bytes, e.output_bytes + uint64_t(cap));
}

TEST(DiskPreflight, LosslessFfv1IsHalfTheRawSize) {
  VideoInfo info = clip_info();
  EXPECT_EQ(estimate_output(info, 1'500'000, 2, OutputKind::kVideo, "", "ffv1").output_bytes,
            uint64_t(1280 * 720 * 1.5 * 250 * 0.5) + 250'000u);
  info.bit_depth = 10;  // two bytes a sample
  EXPECT_EQ(estimate_output(info, 1'500'000, 2, OutputKind::kVideo, "", "ffv1").output_bytes,
            uint64_t(1280 * 720 * 1.5 * 2 * 250 * 0.5) + 250'000u);
}

TEST(DiskPreflight, FramesAreWidthTimesHeightTimesThreeTimesFramesTimesFactor) {
  VideoInfo info = clip_info();
  const double raw = 1280.0 * 720 * 3 * 250;  // scale 2
  OutputEstimate png = estimate_output(info, 1'500'000, 2, OutputKind::kFramesFolder, "png");
  EXPECT_EQ(png.output_bytes, uint64_t(raw * 0.5));
  EXPECT_EQ(png.peak_bytes, png.output_bytes);  // renamed out of the partial folder, not copied
  EXPECT_EQ(estimate_output(info, 0, 2, OutputKind::kFramesFolder, "jpg").output_bytes,
            uint64_t(raw * 0.15));
  EXPECT_EQ(estimate_output(info, 0, 2, OutputKind::kFramesFolder, "webp").output_bytes,
            uint64_t(raw * 0.1));
  // No frame count in the container: duration x rate.
  info.frame_count = -1;
  EXPECT_EQ(estimate_output(info, 0, 2, OutputKind::kFramesFolder, "png").output_bytes,
            uint64_t(raw * 0.5));
  // Nothing to count frames from: unknown, and the check is then skipped.
  info.duration_seconds = 0;
  OutputEstimate unknown = estimate_output(info, 0, 2, OutputKind::kFramesFolder, "png");
  EXPECT_FALSE(unknown.known);
  EXPECT_EQ(unknown.peak_bytes, 0u);
}

TEST(DiskPreflight, ImageAndNullOutputs) {
  VideoInfo info;
  info.width = 100;
  info.height = 50;
  info.is_image = true;
  EXPECT_EQ(estimate_output(info, 1000, 4, OutputKind::kImage, "png").output_bytes,
            uint64_t(400 * 200 * 3 * 0.5));
  OutputEstimate null = estimate_output(clip_info(), 1'500'000, 2, OutputKind::kNull, "");
  EXPECT_TRUE(null.known);
  EXPECT_EQ(null.peak_bytes, 0u);
}

TEST(DiskPreflight, HugeNumbersSaturateInsteadOfWrapping) {
  VideoInfo info = clip_info();
  info.width = info.height = 1 << 30;
  info.frame_count = int64_t(1) << 60;
  EXPECT_EQ(estimate_output(info, 0, 16, OutputKind::kFramesFolder, "png").output_bytes,
            UINT64_MAX);
}

TEST(DiskPreflight, ComparisonThrowsNamingTheOutputAndBothSizes) {
  fs::path out = "/videos/out.mkv";
  EXPECT_NO_THROW(check_disk_space(out, 5'000'000'000, 5'000'000'000));
  try {
    check_disk_space(out, 12'300'000'000, 4'500'000'000);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), out.string());
    EXPECT_NE(e.problem().find("not enough disk space: needs about 12.3 GB, 4.5 GB free"),
              std::string::npos)
        << e.problem();
  }
}

TEST(DiskPreflight, FormatBytesPicksAUnit) {
  EXPECT_EQ(format_bytes(512), "512 bytes");
  EXPECT_EQ(format_bytes(12'345), "12.3 KB");
  EXPECT_EQ(format_bytes(340'000'000), "340.0 MB");
  EXPECT_EQ(format_bytes(1'500'000'000), "1.5 GB");
}

TEST(DiskPreflight, CheckReadsTheFreeSpaceOfTheNearestExistingFolder) {
  fs::path dir = scratch_dir("preflight-real");
  uint64_t free_bytes = fs::space(dir).available;
  // A frames folder that does not exist yet, two levels down: measured on `dir`.
  fs::path out = dir / "new" / "frames/";
  EXPECT_NO_THROW(check_disk_space(out, 1));
  EXPECT_NO_THROW(check_disk_space(out, 0));
  EXPECT_THROW(check_disk_space(out, free_bytes + 1'000'000'000'000), Error);
  EXPECT_FALSE(fs::exists(dir / "new"));  // the check creates nothing
}

// A 1 MiB tmpfs: a real "disk full" file system (needs root or CAP_SYS_ADMIN to mount).
TEST(DiskPreflight, TinyTmpfsRefusesABigOutput) {
  fs::path dir = scratch_dir("preflight-tmpfs");
  if (mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=1m") != 0)
    GTEST_SKIP() << "cannot mount a tmpfs here (not root?): " << std::strerror(errno);
  struct Unmount {
    fs::path dir;
    ~Unmount() { umount(dir.c_str()); }
  } unmount{dir};
  fs::path out = dir / "out.mkv";
  EXPECT_NO_THROW(check_disk_space(out, 500'000));
  try {
    check_disk_space(out, 10'000'000);
    FAIL() << "expected an Error on a 1 MiB file system";
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), out.string());
    EXPECT_NE(e.problem().find("needs about 10.0 MB, 1.0 MB free"), std::string::npos)
        << e.problem();
  }
}

// The estimate is an upper bound of a real upscaled encode, and not a wild one.
TEST(DiskPreflight, EstimateBoundsARealUpscaledEncode) {
  fs::path dir = scratch_dir("preflight-encode");
  fs::path in = dir / "in.mp4", out = dir / "out.mp4";
  auto made = run_command(
      "ffmpeg -v error -f lavfi -i testsrc2=size=160x90:rate=25 -f lavfi -i "
      "sine=frequency=440:duration=2 -frames:v 50 -c:v libx264 -crf 23 -pix_fmt yuv420p "
      "-c:a aac -shortest " +
      quote(in.string()));
  ASSERT_EQ(made.exit_status, 0) << made.stderr_text;
  VideoInfo info = VideoDecoder(in).info();
  OutputEstimate e = estimate_output(info, fs::file_size(in), 2, OutputKind::kVideo, "", "libx264");
  auto run =
      test::run_cli(quote(in.string()) + " --model lanczos --scale 2 -o " + quote(out.string()));
  ASSERT_EQ(run.exit_status, 0) << run.stderr_text;
  uint64_t actual = fs::file_size(out);
  EXPECT_GE(e.output_bytes, actual);
  EXPECT_LE(e.output_bytes, 6 * actual) << "estimate " << e.output_bytes << ", actual " << actual;
}

}  // namespace
}  // namespace upframe
