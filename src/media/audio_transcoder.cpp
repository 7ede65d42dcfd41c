// Audio re-encoding (see audio_transcoder.hpp).
#include "media/audio_transcoder.hpp"

#include "upframe/error.hpp"

extern "C" {
#include <libavfilter/buffersink.h>
#include <libavfilter/buffersrc.h>
}

namespace upframe::media {

const AVCodec* audio_encoder_for(const AVOutputFormat* format) {
  if (format->audio_codec == AV_CODEC_ID_OPUS) return avcodec_find_encoder_by_name("libopus");
  if (format->audio_codec == AV_CODEC_ID_VORBIS) return avcodec_find_encoder_by_name("libvorbis");
  if (format->audio_codec == AV_CODEC_ID_NONE) return nullptr;
  return avcodec_find_encoder(format->audio_codec);
}

AudioTranscoder::AudioTranscoder(const std::string& file, const AVStream* from,
                                 const AVCodec* encoder, bool global_header)
    : file_(file), from_(from) {
  const AVCodec* decoder = avcodec_find_decoder(from->codecpar->codec_id);
  if (!decoder) fail("no decoder for it");
  dec_.reset(avcodec_alloc_context3(decoder));
  if (!dec_ || avcodec_parameters_to_context(dec_.get(), from->codecpar) < 0)
    fail("cannot set up its decoder");
  dec_->pkt_timebase = from->time_base;
  check(avcodec_open2(dec_.get(), decoder, nullptr), "open its decoder");

  enc_.reset(avcodec_alloc_context3(encoder));
  if (!enc_) fail("out of memory");
  int rate = dec_->sample_rate > 0 ? dec_->sample_rate : 48000;
  if (encoder->supported_samplerates) {
    int best = encoder->supported_samplerates[0];
    for (const int* r = encoder->supported_samplerates; *r; ++r)
      if (*r == 48000 || *r == rate) best = *r;
    for (const int* r = encoder->supported_samplerates; *r; ++r)
      if (*r == rate) best = rate;
    rate = best;
  }
  enc_->sample_rate = rate;
  enc_->sample_fmt = encoder->sample_fmts ? encoder->sample_fmts[0] : dec_->sample_fmt;
  if (dec_->ch_layout.nb_channels > 0 && dec_->ch_layout.nb_channels <= 2)
    av_channel_layout_copy(&enc_->ch_layout, &dec_->ch_layout);
  else
    av_channel_layout_default(&enc_->ch_layout, 2);  // more than stereo: downmixed
  if (enc_->ch_layout.order != AV_CHANNEL_ORDER_NATIVE)
    av_channel_layout_default(&enc_->ch_layout, enc_->ch_layout.nb_channels);
  enc_->bit_rate = 64000LL * enc_->ch_layout.nb_channels;
  enc_->time_base = AVRational{1, rate};
  if (global_header) enc_->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  check(avcodec_open2(enc_.get(), encoder, nullptr), std::string("open ") + encoder->name);
  set_up_graph();
}

void AudioTranscoder::send(const AVPacket* packet, const std::function<void(AVPacket*)>& write) {
  int err = avcodec_send_packet(dec_.get(), packet);
  if (err < 0 && err != AVERROR_EOF) {
    if (packet) return;  // a damaged audio packet: skipped, as a player would
  }
  AVFrame* frame = av_frame_alloc();
  Frame owner = Frame::adopt(frame);
  while (avcodec_receive_frame(dec_.get(), frame) >= 0) {
    frame->pts = frame->best_effort_timestamp;
    check(av_buffersrc_add_frame(src_, frame), "filter");
    pull(write);
  }
  if (!packet) {
    check(av_buffersrc_add_frame(src_, nullptr), "filter");
    pull(write);
    avcodec_send_frame(enc_.get(), nullptr);
    drain(write);
  }
}

void AudioTranscoder::set_up_graph() {
  graph_.reset(avfilter_graph_alloc());
  if (!graph_) fail("out of memory");
  char layout[128] = {0};
  av_channel_layout_describe(&dec_->ch_layout, layout, sizeof layout);
  const std::string in_args =
      "time_base=" + std::to_string(from_->time_base.num) + "/" +
      std::to_string(from_->time_base.den) + ":sample_rate=" + std::to_string(dec_->sample_rate) +
      ":sample_fmt=" + av_get_sample_fmt_name(dec_->sample_fmt) + ":channel_layout=" + layout;
  check(avfilter_graph_create_filter(&src_, avfilter_get_by_name("abuffer"), "in", in_args.c_str(),
                                     nullptr, graph_.get()),
        "abuffer");
  char out_layout[128] = {0};
  av_channel_layout_describe(&enc_->ch_layout, out_layout, sizeof out_layout);
  const std::string format_args =
      std::string("sample_fmts=") + av_get_sample_fmt_name(enc_->sample_fmt) +
      ":sample_rates=" + std::to_string(enc_->sample_rate) + ":channel_layouts=" + out_layout;
  AVFilterContext* resample = nullptr;
  AVFilterContext* format = nullptr;
  check(avfilter_graph_create_filter(&resample, avfilter_get_by_name("aresample"), "resample",
                                     nullptr, nullptr, graph_.get()),
        "aresample");
  check(avfilter_graph_create_filter(&format, avfilter_get_by_name("aformat"), "format",
                                     format_args.c_str(), nullptr, graph_.get()),
        "aformat");
  check(avfilter_graph_create_filter(&sink_, avfilter_get_by_name("abuffersink"), "out", nullptr,
                                     nullptr, graph_.get()),
        "abuffersink");
  check(avfilter_link(src_, 0, resample, 0), "link");
  check(avfilter_link(resample, 0, format, 0), "link");
  check(avfilter_link(format, 0, sink_, 0), "link");
  check(avfilter_graph_config(graph_.get(), nullptr), "configure");
  if (enc_->frame_size > 0 && !(enc_->codec->capabilities & AV_CODEC_CAP_VARIABLE_FRAME_SIZE))
    av_buffersink_set_frame_size(sink_, unsigned(enc_->frame_size));
}

void AudioTranscoder::pull(const std::function<void(AVPacket*)>& write) {
  AVFrame* frame = av_frame_alloc();
  Frame owner = Frame::adopt(frame);
  for (;;) {
    int err = av_buffersink_get_frame(sink_, frame);
    if (err == AVERROR(EAGAIN) || err == AVERROR_EOF) return;
    check(err, "filter");
    if (frame->pts != AV_NOPTS_VALUE)
      frame->pts = av_rescale_q(frame->pts, av_buffersink_get_time_base(sink_), enc_->time_base);
    check(avcodec_send_frame(enc_.get(), frame), "encode");
    av_frame_unref(frame);
    drain(write);
  }
}

void AudioTranscoder::drain(const std::function<void(AVPacket*)>& write) {
  PacketPtr packet = make_packet();
  for (;;) {
    int err = avcodec_receive_packet(enc_.get(), packet.get());
    if (err == AVERROR(EAGAIN) || err == AVERROR_EOF) return;
    check(err, "encode");
    write(packet.get());
    av_packet_unref(packet.get());
  }
}

void AudioTranscoder::check(int err, const std::string& what) const {
  if (err < 0) fail("cannot " + what + ": " + av_error_string(err));
}

void AudioTranscoder::fail(const std::string& problem) const {
  throw Error(file_, "re-encoding audio stream #" + std::to_string(from_->index) + ": " + problem,
              ExitCode::kProcessingFailed, "save");
}

}  // namespace upframe::media
