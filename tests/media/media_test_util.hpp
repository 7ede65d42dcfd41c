// Helpers of the media tests: make clips with the ffmpeg CLI, inspect files with ffprobe,
// decode everything with VideoDecoder and pass it through a sink.
#pragma once

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

extern "C" {
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
}

#include "support/test_support.hpp"
#include "upframe/media/decoder.hpp"
#include "upframe/media/frame_sink.hpp"

namespace upframe::test {

// Runs `ffmpeg -y ARGS`; fails the test on a non-zero status.
inline void ffmpeg(const std::string& args) {
  CommandResult r = run_command("ffmpeg -hide_banner -loglevel error -nostdin -y " + args);
  ASSERT_EQ(r.exit_status, 0) << "ffmpeg " << args << "\n" << r.stderr_text;
}

// ffprobe -of json with the given -show_* arguments.
inline nlohmann::json probe(const fs::path& file, const std::string& what) {
  CommandResult r = run_command("ffprobe -v error -of json " + what + " " + quote(file.string()));
  EXPECT_EQ(r.exit_status, 0) << r.stderr_text;
  return nlohmann::json::parse(r.stdout_text.empty() ? "{}" : r.stdout_text);
}

inline void write_text(const fs::path& file, const std::string& text) {
  std::ofstream(file, std::ios::binary) << text;
}

inline std::vector<Frame> decode_all(const fs::path& file) {
  VideoDecoder decoder(file);
  std::vector<Frame> frames;
  while (auto frame = decoder.next()) frames.push_back(std::move(*frame));
  return frames;
}

// Presentation times in seconds of every frame VideoDecoder gives.
inline std::vector<double> decoded_times(const fs::path& file) {
  VideoDecoder decoder(file);
  std::vector<double> times;
  while (auto frame = decoder.next())
    times.push_back(frame->pts() * av_q2d(decoder.info().time_base));
  return times;
}

// Decodes `input` and writes every frame, unchanged, through a video sink; returns its notes.
inline std::vector<std::string> transcode(const fs::path& input, const fs::path& output,
                                          VideoSinkOptions options = {}) {
  VideoDecoder decoder(input);
  const VideoInfo& info = decoder.info();
  auto sink = make_video_sink(output, info, info.width, info.height, options);
  int64_t index = 0;
  while (auto frame = decoder.next()) sink->write_unique(index++, *frame, frame->pts());
  sink->finish();
  return sink->notes();
}

inline bool any_note_contains(const std::vector<std::string>& notes, const std::string& text) {
  for (const auto& note : notes)
    if (note.find(text) != std::string::npos) return true;
  return false;
}

// Bytes of every plane row of two host frames are equal.
inline bool same_pixels(const Frame& a, const Frame& b) {
  if (a.width() != b.width() || a.height() != b.height() || a.format() != b.format()) return false;
  const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(a.format());
  for (int plane = 0; plane < 4 && a.av()->data[plane]; ++plane) {
    int bytes = av_image_get_linesize(a.format(), a.width(), plane);
    int rows =
        plane == 0 || plane == 3 ? a.height() : AV_CEIL_RSHIFT(a.height(), desc->log2_chroma_h);
    if (desc->flags & AV_PIX_FMT_FLAG_RGB || desc->nb_components <= 2) rows = a.height();
    for (int y = 0; y < rows; ++y)
      if (std::memcmp(a.av()->data[plane] + y * a.av()->linesize[plane],
                      b.av()->data[plane] + y * b.av()->linesize[plane], bytes) != 0)
        return false;
  }
  return true;
}

}  // namespace upframe::test
