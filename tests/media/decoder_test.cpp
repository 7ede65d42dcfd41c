#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "media_test_util.hpp"
#include "upframe/error.hpp"

namespace upframe::test {
namespace {

const char* kClip = "-f lavfi -i testsrc2=size=160x90:rate=25 -frames:v 50 -pix_fmt yuv420p";

TEST(VideoDecoder, CfrClipFrameCountAndTimestamps) {
  fs::path dir = scratch_dir("decode-cfr");
  fs::path clip = dir / "cfr.mp4";
  ffmpeg(std::string(kClip) + " -c:v libx264 " + quote(clip.string()));

  VideoDecoder decoder(clip);
  const VideoInfo& info = decoder.info();
  EXPECT_EQ(info.width, 160);
  EXPECT_EQ(info.height, 90);
  EXPECT_EQ(info.pixel_format, AV_PIX_FMT_YUV420P);
  EXPECT_EQ(info.bit_depth, 8);
  EXPECT_EQ(info.codec, "h264");
  EXPECT_EQ(info.frame_count, 50);
  EXPECT_EQ(av_cmp_q(info.avg_frame_rate, AVRational{25, 1}), 0);
  EXPECT_NEAR(info.duration_seconds, 2.0, 0.05);
  EXPECT_FALSE(info.variable_frame_rate);
  EXPECT_FALSE(info.is_image);
  EXPECT_EQ(decoder.backend(), "cpu");

  int64_t count = 0;
  while (auto frame = decoder.next()) {
    EXPECT_EQ(frame->width(), 160);
    EXPECT_NEAR(frame->pts() * av_q2d(info.time_base), count / 25.0, 1e-3) << "frame " << count;
    ++count;
  }
  EXPECT_EQ(count, 50);
  EXPECT_FALSE(decoder.next().has_value());
}

TEST(VideoDecoder, MkvWithoutFrameCountEstimatesIt) {
  fs::path dir = scratch_dir("decode-mkv");
  fs::path clip = dir / "clip.mkv";
  ffmpeg(std::string(kClip) + " -c:v libx264 " + quote(clip.string()));
  VideoDecoder decoder(clip);
  EXPECT_EQ(decoder.info().frame_count, 50);  // duration x rate
  EXPECT_EQ(decode_all(clip).size(), 50u);
}

TEST(VideoDecoder, StillImageIsAnImage) {
  fs::path dir = scratch_dir("decode-image");
  fs::path image = dir / "still.png";
  ffmpeg("-f lavfi -i testsrc2=size=64x48 -frames:v 1 " + quote(image.string()));
  VideoDecoder decoder(image);
  EXPECT_TRUE(decoder.info().is_image);
  EXPECT_EQ(decoder.info().frame_count, 1);
  EXPECT_EQ(decode_all(image).size(), 1u);
}

// The error for `path`, checked to name the file and contain `problem`.
void expect_decode_error(const fs::path& path, const std::string& problem) {
  try {
    VideoDecoder decoder(path);
    while (decoder.next()) {
    }
    ADD_FAILURE() << "no error for " << path;
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), path.string());
    EXPECT_NE(e.problem().find(problem), std::string::npos) << e.what();
    EXPECT_EQ(e.stage(), "decode");
  }
}

TEST(VideoDecoderErrors, MissingFile) {
  expect_decode_error(scratch_dir("missing") / "nothing.mp4", "file not found");
}

TEST(VideoDecoderErrors, TextFileNamedMp4) {
  fs::path file = scratch_dir("text") / "notes.mp4";
  write_text(file, "These are my notes, not a video.\nSecond line.\n");
  expect_decode_error(file, "not a media file");
}

TEST(VideoDecoderErrors, UnreadableFile) {
  fs::path file = scratch_dir("unreadable") / "locked.mp4";
  write_text(file, "x");
  fs::permissions(file, fs::perms::none);
  if (geteuid() != 0) {
    expect_decode_error(file, "permission denied");
    return;
  }
  // Root reads any file, so the check runs in a child that drops to an unprivileged user.
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(2);
    try {
      VideoDecoder decoder(file);
      _exit(3);
    } catch (const Error& e) {
      bool named = e.file() == file.string();
      bool said = e.problem().find("permission denied") != std::string::npos;
      _exit(named && said ? 0 : 4);
    }
  }
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "2: cannot drop privileges, 3: no error, 4: wrong error";
}

TEST(VideoDecoderErrors, NoVideoStream) {
  fs::path file = scratch_dir("novideo") / "sound.mka";
  ffmpeg("-f lavfi -i sine=frequency=440:duration=1 -c:a aac " + quote(file.string()));
  expect_decode_error(file, "no video stream");
}

fs::path truncated_copy(const fs::path& file, double keep) {
  std::string bytes = read_file(file);
  fs::path cut = file.parent_path() / ("cut_" + file.filename().string());
  write_text(cut, bytes.substr(0, static_cast<size_t>(bytes.size() * keep)));
  return cut;
}

TEST(VideoDecoderErrors, TruncatedMp4WithoutIndex) {
  // The moov index is at the end: cutting the file loses it.
  fs::path clip = scratch_dir("trunc-mp4") / "clip.mp4";
  ffmpeg(std::string(kClip) + " -c:v libx264 " + quote(clip.string()));
  expect_decode_error(truncated_copy(clip, 0.6), "damaged or truncated");
}

TEST(VideoDecoderErrors, TruncatedFaststartMp4ReportsTheFrame) {
  // The index is complete but the samples stop part way.
  fs::path clip = scratch_dir("trunc-mp4-fast") / "clip.mp4";
  ffmpeg(std::string(kClip) + " -c:v libx264 -movflags +faststart " + quote(clip.string()));
  fs::path cut = truncated_copy(clip, 0.6);
  VideoDecoder decoder(cut);
  try {
    while (decoder.next()) {
    }
    ADD_FAILURE() << "no error for a truncated mp4";
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), cut.string());
    EXPECT_GT(e.frame_index(), 0);
    EXPECT_LT(e.frame_index(), 50);
  }
}

TEST(VideoDecoderErrors, TruncatedMkv) {
  fs::path clip = scratch_dir("trunc-mkv") / "clip.mkv";
  ffmpeg(std::string(kClip) + " -c:v libx264 " + quote(clip.string()));
  expect_decode_error(truncated_copy(clip, 0.6), "truncated");
}

TEST(VideoDecoder, FramesCarryColourAndHdrSideData) {
  fs::path clip = scratch_dir("decode-hdr") / "hdr.mkv";
  ffmpeg(
      "-f lavfi -i testsrc2=size=128x72:rate=25 -frames:v 5 -pix_fmt yuv420p10le -c:v libx265 "
      "-x265-params 'log-level=error:master-display=G(13250,34500)B(7500,3000)R(34000,16000)"
      "WP(15635,16450)L(10000000,50):max-cll=1000,400' -color_primaries bt2020 -color_trc "
      "smpte2084 -colorspace bt2020nc " +
      quote(clip.string()));
  VideoDecoder decoder(clip);
  EXPECT_EQ(decoder.info().bit_depth, 10);
  EXPECT_EQ(decoder.info().color_primaries, AVCOL_PRI_BT2020);
  EXPECT_EQ(decoder.info().color_trc, AVCOL_TRC_SMPTE2084);
  auto frame = decoder.next();
  ASSERT_TRUE(frame);
  EXPECT_EQ(frame->av()->color_primaries, AVCOL_PRI_BT2020);
  EXPECT_EQ(frame->av()->colorspace, AVCOL_SPC_BT2020_NCL);
  EXPECT_NE(av_frame_get_side_data(frame->av(), AV_FRAME_DATA_MASTERING_DISPLAY_METADATA), nullptr);
  EXPECT_NE(av_frame_get_side_data(frame->av(), AV_FRAME_DATA_CONTENT_LIGHT_LEVEL), nullptr);
}

// Found by fuzz_decoder in CI (UBSan: "load of value 33, which is not a valid value for type
// 'enum AVChromaLocation'"): an H.264 SPS whose chroma_sample_loc_type is 32, which FFmpeg
// 5.1 stores unchecked. Rebuilt by hand (tests/fuzz_regressions/decoder/README.md). The
// decoder must report it as unspecified, never as an out-of-range enum value.
TEST(VideoDecoder, OutOfRangeChromaLocationIsUnspecified) {
  fs::path file = source_dir() / "tests/fuzz_regressions/decoder/h264-chroma-loc-out-of-range.h264";
  VideoDecoder decoder(file);
  auto as_int = [](const AVChromaLocation& field) {
    int value = 0;
    std::memcpy(&value, &field, sizeof value);
    return value;
  };
  EXPECT_EQ(as_int(decoder.info().chroma_location), AVCHROMA_LOC_UNSPECIFIED);
  int frames = 0;
  while (auto frame = decoder.next()) {
    int location = as_int(frame->av()->chroma_location);
    EXPECT_GE(location, 0);
    EXPECT_LT(location, AVCHROMA_LOC_NB);
    ++frames;
  }
  EXPECT_EQ(frames, 3);
}

}  // namespace
}  // namespace upframe::test

namespace upframe::test {
namespace {

// DecoderOptions::luma_frames: formats without a plain luma plane go to the nearest planar
// YUV the duplicate detector reads, alpha (or a palette, which may hold it) kept.
TEST(VideoDecoder, LumaFrameFormatIsTheNearestPlanarYuv) {
  EXPECT_EQ(luma_frame_format(AV_PIX_FMT_YUV420P), AV_PIX_FMT_YUV420P);
  EXPECT_EQ(luma_frame_format(AV_PIX_FMT_YUV420P10LE), AV_PIX_FMT_YUV420P10LE);
  EXPECT_EQ(luma_frame_format(AV_PIX_FMT_NV12), AV_PIX_FMT_NV12);
  EXPECT_EQ(luma_frame_format(AV_PIX_FMT_PAL8), AV_PIX_FMT_YUVA444P);
  EXPECT_EQ(luma_frame_format(AV_PIX_FMT_BGRA), AV_PIX_FMT_YUVA444P);
  EXPECT_EQ(luma_frame_format(AV_PIX_FMT_RGB24), AV_PIX_FMT_YUV444P);
  EXPECT_EQ(luma_frame_format(AV_PIX_FMT_RGB48BE), AV_PIX_FMT_YUV444P10LE);
  EXPECT_EQ(luma_frame_format(AV_PIX_FMT_RGBA64BE), AV_PIX_FMT_YUVA444P10LE);
  EXPECT_EQ(luma_frame_format(AV_PIX_FMT_YUYV422), AV_PIX_FMT_YUV422P);
  EXPECT_EQ(luma_frame_format(AV_PIX_FMT_YA8), AV_PIX_FMT_YUVA444P);
}

}  // namespace
}  // namespace upframe::test
