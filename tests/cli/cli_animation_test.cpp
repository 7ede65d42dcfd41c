// Animated formats and WebM through the whole program (issue 9): GIF, APNG and animated WebP in
// and out with every frame, its own duration and alpha; a GIF into mp4; WebM with VP9 and Opus;
// encoders the container cannot hold refused. Outputs are read back with upframe's own decoder
// (libavformat/libavcodec, libwebp for animated WebP, which FFmpeg 5.1 cannot decode) and
// ffprobe.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "support/test_support.hpp"
#include "upframe/media/decoder.hpp"

extern "C" {
#include <libavutil/pixdesc.h>
}

namespace upframe::test {
namespace {

// What a viewer sees of an animation: frame times and durations (seconds), the decoded
// format, and the alpha of every frame's top-left and bottom-right pixels (255 without alpha).
struct Animation {
  std::vector<double> starts;
  std::vector<double> durations;
  std::string pixel_format;
  int width = 0;
  std::vector<std::pair<int, int>> corner_alpha;
  double end() const { return starts.empty() ? 0 : starts.back() + durations.back(); }
};

int alpha_at(const Frame& frame, int x, int y) {
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(frame.format());
  if (!(desc->flags & AV_PIX_FMT_FLAG_ALPHA) && !(desc->flags & AV_PIX_FMT_FLAG_PAL)) return 255;
  const AVFrame* f = frame.av();
  if (desc->flags & AV_PIX_FMT_FLAG_PAL) {
    const uint32_t argb =
        reinterpret_cast<const uint32_t*>(f->data[1])[f->data[0][y * f->linesize[0] + x]];
    return int(argb >> 24);
  }
  const AVComponentDescriptor& a = desc->comp[3];
  uint16_t value = 0;
  const uint8_t* data[4] = {f->data[0], f->data[1], f->data[2], f->data[3]};
  av_read_image_line2(&value, data, f->linesize, desc, x, y, 3, 1, 0, 2);
  return a.depth > 8 ? value >> (a.depth - 8) : value;
}

Animation read_animation(const fs::path& file) {
  VideoDecoder decoder(file);
  Animation a;
  a.pixel_format = av_get_pix_fmt_name(decoder.info().pixel_format);
  a.width = decoder.info().width;
  const double tb = av_q2d(decoder.info().time_base);
  while (std::optional<Frame> frame = decoder.next()) {
    a.starts.push_back(frame->pts() * tb);
    a.durations.push_back(frame->av()->pkt_duration * tb);
    a.corner_alpha.emplace_back(alpha_at(*frame, 0, 0),
                                alpha_at(*frame, frame->width() - 1, frame->height() - 1));
  }
  return a;
}

void make(const std::string& ffmpeg_args) {
  auto r = run_command("ffmpeg -hide_banner -loglevel error -y " + ffmpeg_args);
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
}

// 9 frames of 40x30 whose left quarter is transparent, at irregular times (setpts): a
// variable-duration animation.
const std::string kSource =
    "-f lavfi -i testsrc2=size=40x30:rate=10:duration=0.9 -vf "
    "\"settb=1/1000,setpts='N*100+if(eq(mod(N\\,3)\\,1)\\,50\\,0)',format=rgba,"
    "geq=r='r(X,Y)':g='g(X,Y)':b='b(X,Y)':a='if(lt(X,10),0,255)'";
const std::string kGifFilter =
    ",split[a][b];[a]palettegen=reserve_transparent=1[p];[b][p]paletteuse\" -fps_mode "
    "passthrough ";

CommandResult upscale(const fs::path& in, const fs::path& out, const std::string& extra = {}) {
  return run_cli(quote(in.string()) + " --model lanczos --scale 2 -y -o " + quote(out.string()) +
                 " " + extra);
}

// Same frames, same times and durations (within `tolerance` seconds), same total.
void expect_same_timing(const Animation& in, const Animation& out, double tolerance) {
  ASSERT_EQ(in.starts.size(), out.starts.size());
  for (size_t i = 0; i < in.starts.size(); ++i) {
    EXPECT_NEAR(in.starts[i], out.starts[i], tolerance) << "frame " << i;
    EXPECT_NEAR(in.durations[i], out.durations[i], tolerance) << "frame " << i;
  }
  EXPECT_NEAR(in.end(), out.end(), tolerance);
}

TEST(CliAnimation, VariableDurationGifKeepsFramesDurationsAndTransparency) {
  auto dir = scratch_dir("anim-gif");
  const fs::path in = dir / "in.gif", out = dir / "out.gif";
  make(kSource + kGifFilter + quote(in.string()));
  const Animation before = read_animation(in);
  ASSERT_EQ(before.starts.size(), 9u);
  // The source really varies.
  EXPECT_GT(*std::max_element(before.durations.begin(), before.durations.end()),
            *std::min_element(before.durations.begin(), before.durations.end()) + 0.05);
  auto r = upscale(in, out);
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  const Animation after = read_animation(out);
  EXPECT_EQ(after.width, 80);
  expect_same_timing(before, after, 0.0051);
  for (size_t i = 0; i < after.corner_alpha.size(); ++i) {
    EXPECT_EQ(after.corner_alpha[i].first, 0) << "transparent corner, frame " << i;
    EXPECT_EQ(after.corner_alpha[i].second, 255) << "opaque corner, frame " << i;
  }
  // GIF is ffprobe's too.
  auto p = run_command(
      "ffprobe -v error -count_frames -show_entries stream=nb_read_frames -of "
      "csv=p=0 " +
      quote(out.string()));
  EXPECT_EQ(std::stoi(p.stdout_text), 9);
}

TEST(CliAnimation, ApngRoundTripKeepsAlphaAndDurations) {
  auto dir = scratch_dir("anim-apng");
  const fs::path in = dir / "in.apng", out = dir / "out.png", again = dir / "again.apng";
  make(kSource + "\" -fps_mode passthrough -plays 0 -f apng " + quote(in.string()));
  const Animation before = read_animation(in);
  ASSERT_EQ(before.starts.size(), 9u);
  // .png from an animation is an APNG.
  auto r = upscale(in, out);
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  const Animation after = read_animation(out);
  EXPECT_EQ(after.pixel_format, "rgba");
  EXPECT_EQ(after.width, 80);
  expect_same_timing(before, after, 0.0011);
  for (const auto& [transparent, opaque] : after.corner_alpha) {
    EXPECT_LE(transparent, 2);
    EXPECT_GE(opaque, 253);
  }
  // An APNG named .png is read as an animation, not as a still image.
  r = upscale(out, again);
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  EXPECT_EQ(read_animation(again).starts.size(), 9u);
}

TEST(CliAnimation, AnimatedWebpRoundTripKeepsEveryFrame) {
  auto dir = scratch_dir("anim-webp");
  const fs::path gif = dir / "in.gif", in = dir / "in.webp", out = dir / "out.webp";
  make(kSource + kGifFilter + quote(gif.string()));
  // GIF -> WebP -> WebP: the second input is one upframe wrote.
  auto r = upscale(gif, in, "--quality 100");
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  const Animation before = read_animation(in);
  ASSERT_EQ(before.starts.size(), 9u);
  expect_same_timing(read_animation(gif), before, 0.0011);
  r = upscale(in, out);
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  const Animation after = read_animation(out);
  EXPECT_EQ(after.width, 160);
  expect_same_timing(before, after, 0.0011);
  for (const auto& [transparent, opaque] : after.corner_alpha) {
    EXPECT_LE(transparent, 2);
    EXPECT_GE(opaque, 253);
  }
}

TEST(CliAnimation, PaletteGifIntoMp4DropsAlphaWithOneLine) {
  auto dir = scratch_dir("anim-gif-mp4");
  const fs::path in = dir / "in.gif", out = dir / "out.mp4";
  make(kSource + kGifFilter + quote(in.string()));
  auto r = upscale(in, out);
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  std::istringstream lines(r.stderr_text);
  int alpha_lines = 0;
  for (std::string line; std::getline(lines, line);)
    alpha_lines += line.find("alpha channel dropped") != std::string::npos;
  EXPECT_EQ(alpha_lines, 1) << r.stderr_text;
  auto p = run_command(
      "ffprobe -v error -count_frames -show_entries stream=codec_name,pix_fmt,nb_read_frames -of "
      "json " +
      quote(out.string()));
  auto j = nlohmann::json::parse(p.stdout_text);
  EXPECT_EQ(j["streams"][0]["codec_name"], "h264");
  EXPECT_EQ(j["streams"][0]["pix_fmt"], "yuv420p");
  EXPECT_EQ(j["streams"][0]["nb_read_frames"], "9");
  const Animation before = read_animation(in), after = read_animation(out);
  EXPECT_NEAR(before.starts.back(), after.starts.back(), 0.0011);
}

TEST(CliAnimation, WebmGetsVp9AndOpusAudio) {
  auto dir = scratch_dir("anim-webm");
  const fs::path in = dir / "in.mp4", out = dir / "out.webm", stats = dir / "s.json";
  make(
      "-f lavfi -i testsrc2=size=64x48:rate=12:duration=1 -f lavfi -i "
      "sine=frequency=440:duration=1:sample_rate=44100 -c:v libx264 -pix_fmt yuv420p -c:a aac "
      "-shortest " +
      quote(in.string()));
  auto r = upscale(in, out, "--stats " + quote(stats.string()));
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  EXPECT_EQ(nlohmann::json::parse(read_file(stats))["encoder"], "libvpx-vp9");
  std::istringstream lines(r.stderr_text);
  int reencode_lines = 0;
  for (std::string line; std::getline(lines, line);)
    reencode_lines += line.find("re-encoded to libopus") != std::string::npos;
  EXPECT_EQ(reencode_lines, 1) << r.stderr_text;
  auto p = run_command(
      "ffprobe -v error -count_frames -show_entries "
      "stream=codec_name,codec_type,nb_read_frames:format=duration -of json " +
      quote(out.string()));
  auto j = nlohmann::json::parse(p.stdout_text);
  ASSERT_EQ(j["streams"].size(), 2u) << p.stdout_text;
  EXPECT_EQ(j["streams"][0]["codec_name"], "vp9");
  EXPECT_EQ(j["streams"][0]["nb_read_frames"], "12");
  EXPECT_EQ(j["streams"][1]["codec_name"], "opus");
  EXPECT_GT(std::stoi(j["streams"][1]["nb_read_frames"].get<std::string>()), 40);
  // The audio decodes, and lasts as long as the input's.
  auto decoded = run_command("ffmpeg -v error -i " + quote(out.string()) + " -map 0:a -f null -");
  EXPECT_EQ(decoded.exit_status, 0) << decoded.stderr_text;
  EXPECT_TRUE(decoded.stderr_text.empty()) << decoded.stderr_text;
  const Animation before = read_animation(in), after = read_animation(out);
  EXPECT_EQ(before.starts.size(), after.starts.size());
  // WebM keeps 1 ms timestamps and no duration for the last frame (readers guess it).
  EXPECT_NEAR(before.end(), after.end(), 0.01);
  double duration = std::stod(j["format"]["duration"].get<std::string>());
  EXPECT_NEAR(duration, 1.0, 0.05);
}

// An animation holds no sound: a clip with audio into a GIF says so in one warning, and the
// GIF has the frames only.
TEST(CliAnimation, AudioIntoGifIsDroppedWithOneWarning) {
  auto dir = scratch_dir("anim-gif-audio");
  const fs::path in = dir / "in.mp4", out = dir / "out.gif";
  make(
      "-f lavfi -i testsrc2=size=40x30:rate=10:duration=0.5 -f lavfi -i "
      "sine=frequency=440:duration=0.5:sample_rate=44100 -c:v libx264 -pix_fmt yuv420p -c:a aac "
      "-shortest " +
      quote(in.string()));
  auto r = upscale(in, out);
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  std::istringstream lines(r.stderr_text);
  int audio_lines = 0;
  for (std::string line; std::getline(lines, line);)
    audio_lines += line.find("warning: " + out.string() + ": audio dropped") != std::string::npos;
  EXPECT_EQ(audio_lines, 1) << r.stderr_text;
  auto p = run_command("ffprobe -v error -show_entries stream=codec_type -of csv=p=0 " +
                       quote(out.string()));
  EXPECT_EQ(p.stdout_text, "video\n");
  // Without audio in the input, nothing is said.
  const fs::path silent = dir / "silent.mp4";
  make("-f lavfi -i testsrc2=size=40x30:rate=10:duration=0.5 -c:v libx264 -pix_fmt yuv420p " +
       quote(silent.string()));
  r = upscale(silent, dir / "silent.gif");
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  EXPECT_EQ(r.stderr_text.find("audio dropped"), std::string::npos) << r.stderr_text;
}

TEST(CliAnimation, TenBitIntoWebmStaysTenBit) {
  auto dir = scratch_dir("anim-webm10");
  const fs::path in = dir / "in.mkv", out = dir / "out.webm";
  make(
      "-f lavfi -i testsrc2=size=64x48:rate=12:duration=0.5 -pix_fmt yuv420p10le -c:v libx265 "
      "-x265-params log-level=error " +
      quote(in.string()));
  auto r = upscale(in, out);
  ASSERT_EQ(r.exit_status, 0) << r.stderr_text;
  auto p =
      run_command("ffprobe -v error -show_entries stream=codec_name,pix_fmt,profile -of json " +
                  quote(out.string()));
  auto j = nlohmann::json::parse(p.stdout_text);
  EXPECT_EQ(j["streams"][0]["codec_name"], "vp9");
  EXPECT_EQ(j["streams"][0]["pix_fmt"], "yuv420p10le");
  EXPECT_EQ(j["streams"][0]["profile"], "Profile 2");
}

// An encoder the container cannot hold: one error line naming the file, status 2, nothing at
// the output path (nor a partial run beside it).
TEST(CliAnimation, EncoderTheContainerCannotHoldIsRefused) {
  auto dir = scratch_dir("anim-refused");
  const fs::path in = dir / "in.mp4";
  make("-f lavfi -i testsrc2=size=32x24:rate=12:duration=0.25 -c:v libx264 " + quote(in.string()));
  for (const std::string encoder : {"libx264", "libx265", "ffv1"}) {
    const fs::path out = dir / ("x-" + encoder + ".webm");
    auto r = run_cli(quote(in.string()) + " --model lanczos --encoder " + encoder + " -o " +
                     quote(out.string()));
    EXPECT_EQ(r.exit_status, 2) << encoder << ": " << r.stderr_text;
    // One error line; info lines (a CUDA build without a device says it decodes on the CPU)
    // may come before it.
    std::istringstream lines(r.stderr_text);
    int errors = 0;
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("upframe: info: ", 0) == 0) continue;
      ++errors;
      EXPECT_EQ(line.rfind("upframe: error: " + out.string() + ": the webm container", 0), 0u)
          << line;
    }
    EXPECT_EQ(errors, 1) << r.stderr_text;
    EXPECT_FALSE(fs::exists(out));
    EXPECT_FALSE(fs::exists(out.string() + ".upframe-partial"));
  }
  auto r = run_cli(quote(in.string()) + " --model lanczos --encoder libnothing -o " +
                   quote((dir / "y.mkv").string()));
  EXPECT_EQ(r.exit_status, 2) << r.stderr_text;
}

}  // namespace
}  // namespace upframe::test
