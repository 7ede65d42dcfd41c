// Audio re-encoding for a container that cannot hold the source's audio codec (an mp4 output
// of a Vorbis source, a WebM output of AAC): decode -> resample, reformat and re-frame
// (libavfilter: aresample, aformat, the encoder's frame size at the sink) -> encode.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "media/libav_helpers.hpp"

extern "C" {
#include <libavfilter/avfilter.h>
}

namespace upframe::media {

// The encoder a container takes for audio: its default audio codec (webm: Opus, mp4: AAC),
// by the libraries' names where FFmpeg's own encoder is experimental (opus, vorbis); null
// when it has none.
const AVCodec* audio_encoder_for(const AVOutputFormat* format);

// One input audio stream into one output stream. Errors are upframe::Error naming `file` and
// the input stream.
class AudioTranscoder {
 public:
  AudioTranscoder(const std::string& file, const AVStream* from, const AVCodec* encoder,
                  bool global_header);
  const AVCodecContext* encoder() const { return enc_.get(); }

  // Feeds one packet (null: the end) and writes every finished output packet.
  void send(const AVPacket* packet, const std::function<void(AVPacket*)>& write);

 private:
  struct GraphFreer {
    void operator()(AVFilterGraph* g) const { avfilter_graph_free(&g); }
  };
  void set_up_graph();
  void pull(const std::function<void(AVPacket*)>& write);
  void drain(const std::function<void(AVPacket*)>& write);
  void check(int err, const std::string& what) const;
  [[noreturn]] void fail(const std::string& problem) const;

  std::string file_;
  const AVStream* from_;
  CodecContextPtr dec_;
  CodecContextPtr enc_;
  std::unique_ptr<AVFilterGraph, GraphFreer> graph_;
  AVFilterContext* src_ = nullptr;
  AVFilterContext* sink_ = nullptr;
};

}  // namespace upframe::media
