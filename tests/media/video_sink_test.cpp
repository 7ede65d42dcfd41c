#include <filesystem>
#include <fstream>

#include "media_test_util.hpp"
#include "upframe/cuda_device.hpp"
#include "upframe/error.hpp"

extern "C" {
#include <libavutil/mastering_display_metadata.h>
}

namespace upframe::test {
namespace {

const char* kSmall = "-f lavfi -i testsrc2=size=160x90:rate=25:duration=1";

std::string stream_field(const nlohmann::json& info, size_t index, const std::string& key) {
  if (!info.contains("streams") || info["streams"].size() <= index) return {};
  const auto& s = info["streams"][index];
  return s.contains(key) ? s[key].get<std::string>() : std::string();
}

TEST(VideoSink, VariableFrameRateKeepsEveryTimestamp) {
  fs::path dir = scratch_dir("sink-vfr");
  fs::path input = dir / "vfr.mkv";
  // Every fourth frame is followed by a 24 ms longer gap.
  ffmpeg(std::string(kSmall) +
         " -vf \"settb=1/1000,setpts='(N+floor(N/4)*0.6)/25/TB'\" -fps_mode passthrough"
         " -c:v libx264 " +
         quote(input.string()));
  std::vector<double> in_times = decoded_times(input);
  ASSERT_EQ(in_times.size(), 25u);
  ASSERT_GT(in_times[4] - in_times[3], in_times[3] - in_times[2] + 0.01) << "input is not VFR";

  for (const char* name : {"out.mp4", "out.mkv"}) {
    fs::path output = dir / name;
    transcode(input, output);
    std::vector<double> out_times = decoded_times(output);
    ASSERT_EQ(out_times.size(), in_times.size()) << name;
    for (size_t i = 0; i < in_times.size(); ++i)
      EXPECT_NEAR(out_times[i], in_times[i], 0.0015) << name << " frame " << i;
  }
}

TEST(VideoSink, TenBitStaysTenBitWithAutoEncoder) {
  fs::path dir = scratch_dir("sink-10bit");
  fs::path input = dir / "in10.mkv";
  ffmpeg(std::string(kSmall) + " -pix_fmt yuv420p10le -c:v ffv1 " + quote(input.string()));
  fs::path output = dir / "out.mkv";
  auto notes = transcode(input, output);
  EXPECT_TRUE(any_note_contains(notes, "libx265")) << notes.front();
  auto info = probe(output, "-show_streams");
  EXPECT_EQ(stream_field(info, 0, "codec_name"), "hevc");
  EXPECT_EQ(stream_field(info, 0, "pix_fmt"), "yuv420p10le");
  EXPECT_EQ(decode_all(output).size(), 25u);
}

TEST(VideoSink, SvtAv1TakesTheClosestTenBitFormat) {
  fs::path dir = scratch_dir("sink-svt");
  fs::path input = dir / "in422.mkv";
  ffmpeg("-f lavfi -i testsrc2=size=128x96:rate=25 -frames:v 5 -pix_fmt yuv422p10le -c:v ffv1 " +
         quote(input.string()));
  fs::path output = dir / "out.mkv";
  VideoSinkOptions options;
  options.encoder = "libsvtav1";
  options.crf = 40;
  transcode(input, output, options);
  auto info = probe(output, "-show_streams");
  EXPECT_EQ(stream_field(info, 0, "codec_name"), "av1");
  EXPECT_EQ(stream_field(info, 0, "pix_fmt"), "yuv420p10le");
}

TEST(VideoSink, Bt709ColourCarried) {
  fs::path dir = scratch_dir("sink-709");
  fs::path input = dir / "in709.mp4";
  ffmpeg(std::string(kSmall) +
         " -c:v libx264 -color_primaries bt709 -color_trc bt709 -colorspace bt709 " +
         quote(input.string()));
  fs::path output = dir / "out.mp4";
  transcode(input, output);
  auto info = probe(output, "-show_streams");
  EXPECT_EQ(stream_field(info, 0, "color_primaries"), "bt709");
  EXPECT_EQ(stream_field(info, 0, "color_transfer"), "bt709");
  EXPECT_EQ(stream_field(info, 0, "color_space"), "bt709");
}

TEST(VideoSink, Bt2020PqAndHdrMetadataCarried) {
  fs::path dir = scratch_dir("sink-hdr");
  fs::path input = dir / "hdr.mkv";
  ffmpeg(
      "-f lavfi -i testsrc2=size=128x72:rate=25 -frames:v 5 -pix_fmt yuv420p10le -c:v libx265 "
      "-x265-params 'log-level=error:master-display=G(13250,34500)B(7500,3000)R(34000,16000)"
      "WP(15635,16450)L(10000000,50):max-cll=1000,400' -color_primaries bt2020 -color_trc "
      "smpte2084 -colorspace bt2020nc " +
      quote(input.string()));
  for (const char* name : {"out.mkv", "out.mp4"}) {
    fs::path output = dir / name;
    transcode(input, output);
    auto info = probe(output, "-show_streams");
    EXPECT_EQ(stream_field(info, 0, "color_primaries"), "bt2020") << name;
    EXPECT_EQ(stream_field(info, 0, "color_transfer"), "smpte2084") << name;
    EXPECT_EQ(stream_field(info, 0, "pix_fmt"), "yuv420p10le") << name;
    // The decoded frames carry the mastering display and light level again.
    VideoDecoder decoder(output);
    auto frame = decoder.next();
    ASSERT_TRUE(frame);
    const auto* sd = av_frame_get_side_data(frame->av(), AV_FRAME_DATA_MASTERING_DISPLAY_METADATA);
    ASSERT_NE(sd, nullptr) << name;
    const auto* mastering = reinterpret_cast<const AVMasteringDisplayMetadata*>(sd->data);
    EXPECT_NEAR(av_q2d(mastering->max_luminance), 1000.0, 0.5);
    const auto* light = av_frame_get_side_data(frame->av(), AV_FRAME_DATA_CONTENT_LIGHT_LEVEL);
    ASSERT_NE(light, nullptr) << name;
    EXPECT_EQ(reinterpret_cast<const AVContentLightMetadata*>(light->data)->MaxCLL, 1000u);
  }
}

// An mkv with h264 video, aac audio, a SubRip subtitle, a title and two chapters.
fs::path make_multi_stream_input(const fs::path& dir) {
  fs::path subs = dir / "subs.srt";
  write_text(
      subs, "1\n00:00:00,000 --> 00:00:00,400\nHello\n\n2\n00:00:00,500 --> 00:00:00,900\nWorld\n");
  fs::path meta = dir / "meta.txt";
  write_text(meta,
             ";FFMETADATA1\ntitle=Upframe test\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=500\n"
             "title=One\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=500\nEND=1000\ntitle=Two\n");
  fs::path input = dir / "multi.mkv";
  ffmpeg(std::string(kSmall) + " -f lavfi -i sine=frequency=440:duration=1 -i " +
         quote(subs.string()) + " -i " + quote(meta.string()) +
         " -map 0:v -map 1:a -map 2:s -map_metadata 3 -map_chapters 3 -c:v libx264 -c:a aac"
         " -c:s srt -attach " +
         quote(subs.string()) + " -metadata:s:t mimetype=text/plain " + quote(input.string()));
  return input;
}

int packet_count(const fs::path& file, const std::string& stream) {
  auto info =
      probe(file, "-count_packets -show_entries stream=nb_read_packets -select_streams " + stream);
  if (!info.contains("streams") || info["streams"].empty()) return -1;
  return std::stoi(info["streams"][0]["nb_read_packets"].get<std::string>());
}

TEST(VideoSink, AudioCopiedSubtitleDroppedForMp4) {
  fs::path dir = scratch_dir("sink-mp4-streams");
  fs::path input = make_multi_stream_input(dir);
  fs::path output = dir / "out.mp4";
  auto notes = transcode(input, output);
  auto info = probe(output, "-show_streams -show_format");
  // mp4 also gets a data track: the chapters, as QuickTime writes them.
  int subtitles = 0;
  for (const auto& stream : info["streams"]) subtitles += stream["codec_type"] == "subtitle";
  EXPECT_EQ(subtitles, 0);
  EXPECT_EQ(stream_field(info, 0, "codec_type"), "video");
  EXPECT_EQ(stream_field(info, 1, "codec_name"), "aac");
  EXPECT_EQ(packet_count(output, "a"), packet_count(input, "a"));
  EXPECT_TRUE(any_note_contains(notes, "stream #2 (subrip) dropped")) << notes.size();
  EXPECT_TRUE(any_note_contains(notes, "stream #3 (none) dropped: the mp4 container holds no"));
  EXPECT_EQ(info["format"]["tags"]["title"], "Upframe test");
}

TEST(VideoSink, AudioSubtitlesChaptersKeptInMkv) {
  fs::path dir = scratch_dir("sink-mkv-streams");
  fs::path input = make_multi_stream_input(dir);
  fs::path output = dir / "out.mkv";
  auto notes = transcode(input, output);
  EXPECT_FALSE(any_note_contains(notes, "dropped"));
  auto info = probe(output, "-show_streams -show_format -show_chapters");
  ASSERT_EQ(info["streams"].size(), 4u);
  EXPECT_EQ(stream_field(info, 1, "codec_name"), "aac");
  EXPECT_EQ(stream_field(info, 2, "codec_name"), "subrip");
  EXPECT_EQ(stream_field(info, 3, "codec_type"), "attachment");
  EXPECT_EQ(packet_count(output, "a"), packet_count(input, "a"));
  EXPECT_EQ(packet_count(output, "s"), 2);
  EXPECT_EQ(info["chapters"].size(), 2u);
  EXPECT_EQ(info["format"]["tags"]["title"], "Upframe test");
  EXPECT_EQ(decode_all(output).size(), 25u);
}

TEST(VideoSink, Ffv1IsBitExact) {
  fs::path dir = scratch_dir("sink-ffv1");
  fs::path input = dir / "in.mp4";
  ffmpeg(std::string(kSmall) + " -c:v libx264 " + quote(input.string()));
  fs::path output = dir / "out.mkv";
  VideoSinkOptions options;
  options.encoder = "ffv1";
  transcode(input, output, options);
  auto original = decode_all(input);
  auto round_trip = decode_all(output);
  ASSERT_EQ(original.size(), round_trip.size());
  for (size_t i = 0; i < original.size(); ++i)
    EXPECT_TRUE(same_pixels(original[i], round_trip[i])) << "frame " << i;
}

TEST(VideoSink, AbortLeavesNothing) {
  fs::path dir = scratch_dir("sink-abort");
  fs::path input = dir / "in.mp4";
  ffmpeg(std::string(kSmall) + " -c:v libx264 " + quote(input.string()));
  fs::path output = dir / "out.mp4";
  {
    VideoDecoder decoder(input);
    auto sink = make_video_sink(output, decoder.info(), 160, 90, {});
    for (int i = 0; i < 10; ++i) {
      auto frame = decoder.next();
      sink->write_unique(i, *frame, frame->pts());
    }
    sink->abort();
  }
  EXPECT_FALSE(fs::exists(output));
  int entries = 0;
  for (const auto& entry : fs::directory_iterator(dir)) entries += entry.path() != input;
  EXPECT_EQ(entries, 0) << "temporary file left behind";
}

// Segment files carry a checksum: a byte flipped in a packet's payload (which no container
// check would see) makes segment_file_problem() and the join name the segment, and the join
// leaves nothing at the output; the undamaged segments join.
TEST(VideoSink, FlippedByteInASegmentIsNamedNotJoined) {
  fs::path dir = scratch_dir("sink-segment-checksum");
  fs::path input = dir / "in.mp4";
  ffmpeg(std::string(kSmall) + " -c:v libx264 " + quote(input.string()));
  fs::path output = dir / "out.mkv";
  VideoSinkOptions options;
  options.encoder = "ffv1";
  std::vector<fs::path> segments = {dir / "a.upseg", dir / "b.upseg"};
  {
    VideoDecoder decoder(input);
    for (size_t k = 0; k < segments.size(); ++k) {
      auto sink = make_video_segment_sink(segments[k], output, decoder.info(), 160, 90, options);
      for (int i = 0; i < 10; ++i) {
        auto frame = decoder.next();
        ASSERT_TRUE(frame);
        sink->write_unique(int64_t(k) * 10 + i, *frame, frame->pts());
      }
      sink->finish();
    }
  }
  for (const fs::path& segment : segments) EXPECT_EQ(segment_file_problem(segment), "");
  {
    std::fstream f(segments[1], std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-500, std::ios::end);
    char c = 0;
    f.get(c);
    f.seekp(-500, std::ios::end);
    f.put(char(c ^ 0x04));
  }
  EXPECT_EQ(segment_file_problem(segments[1]),
            "damaged: checksum mismatch (the file changed after it was written)");
  VideoInfo info = VideoDecoder(input).info();
  try {
    join_video_segments(output, segments, info, options);
    ADD_FAILURE() << "a damaged segment was joined";
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), segments[1].string());
    EXPECT_EQ(e.problem(), "damaged: checksum mismatch (the file changed after it was written)");
  }
  EXPECT_FALSE(fs::exists(output));
  join_video_segments(output, {segments[0]}, info, options);
  EXPECT_EQ(decode_all(output).size(), 10u);
}

TEST(VideoSink, OutputErrors) {
  fs::path dir = scratch_dir("sink-errors");
  fs::path input = dir / "in.mp4";
  ffmpeg(std::string(kSmall) + " -c:v libx264 " + quote(input.string()));
  VideoDecoder decoder(input);
  const VideoInfo& info = decoder.info();

  fs::path existing = dir / "existing.mp4";
  write_text(existing, "old");
  EXPECT_THROW(make_video_sink(existing, info, 160, 90, {}), Error);
  EXPECT_EQ(read_file(existing), "old");

  VideoSinkOptions unknown;
  unknown.encoder = "libx999";
  try {
    make_video_sink(dir / "a.mkv", info, 160, 90, unknown);
    ADD_FAILURE() << "unknown encoder accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(e.problem().find("libx999"), std::string::npos);
  }
  VideoSinkOptions lossless;
  lossless.encoder = "ffv1";
  EXPECT_THROW(make_video_sink(dir / "b.mp4", info, 160, 90, lossless), UsageError);
  EXPECT_FALSE(container_accepts_encoder(dir / "b.mp4", "ffv1"));
  EXPECT_TRUE(container_accepts_encoder(dir / "b.mkv", "ffv1"));
  EXPECT_THROW(make_video_sink(dir / "missing-folder" / "c.mp4", info, 160, 90, {}), Error);
}

TEST(VideoSink, SampleAspectRatioKept) {
  fs::path dir = scratch_dir("sink-sar");
  fs::path input = dir / "anamorphic.mkv";
  ffmpeg(std::string(kSmall) + " -vf setsar=4/3 -c:v libx264 " + quote(input.string()));
  fs::path output = dir / "out.mp4";
  transcode(input, output);
  EXPECT_EQ(stream_field(probe(output, "-show_streams"), 0, "sample_aspect_ratio"), "4:3");
}

TEST(VideoSink, ShippedSampleWithAudio) {
  fs::path input = source_dir() / "samples" / "sample.mp4";
  fs::path output = scratch_dir("sink-sample") / "out.mkv";
  auto notes = transcode(input, output);
  EXPECT_FALSE(any_note_contains(notes, "dropped"));
  EXPECT_EQ(packet_count(output, "a"), packet_count(input, "a"));
  EXPECT_EQ(decode_all(output).size(), decode_all(input).size());
}

// Without a CUDA device, auto must never pick NVENC, and the probe says why (docs/INTERFACE.md, "Pipeline and fallbacks").
TEST(ResolveEncoder, NvencNeedsADevice) {
  const CudaDeviceInfo gpu = cuda_device_info();
  if (gpu.available) GTEST_SKIP() << "a CUDA device is present (" << gpu.name << ")";
  for (const char* encoder : {"h264_nvenc", "hevc_nvenc"}) {
    const NvencStatus status = nvenc_status(encoder);
    EXPECT_FALSE(status.usable) << encoder;
    EXPECT_EQ(status.reason, gpu.reason) << encoder;
  }
  EXPECT_EQ(resolve_encoder("auto", 8), "libx264");
  EXPECT_EQ(resolve_encoder("auto", 10), "libx265");
}

TEST(ResolveEncoder, AutoFollowsBitDepth) {
  EXPECT_EQ(resolve_encoder("auto", 8), "libx264");
  EXPECT_EQ(resolve_encoder("auto", 10), "libx265");
  EXPECT_EQ(resolve_encoder("ffv1", 10), "ffv1");
  EXPECT_THROW(resolve_encoder("gif", 8), UsageError);
}

}  // namespace
}  // namespace upframe::test
