// Video output: encoder + muxer, other streams of the input copied alongside.
//
// The file is written as `.NAME.upframe-tmp.EXT` beside the final path and renamed in
// finish(). The upscaled video is stream #0; the input's audio, subtitle, attachment and
// cover-art streams follow where the container takes their codec (avformat_query_codec).
// They are read with a second demuxer, one packet ahead, and written just before the first
// video packet that comes after them, so memory stays bounded. Subtitles are copied, never
// converted: SubRip into mp4 (which only takes mov_text) and mov_text into Matroska are
// dropped with a note; audio the container cannot hold is re-encoded (audio_transcoder.cpp).
//
// Resumable output (docs/ARCHITECTURE.md, "Resume") uses the same class twice: segment mode
// encodes one segment's frames with a fresh encoder into a segment file (segment_file.hpp),
// and join mode remuxes the segment files' packets, in order, into the final container with
// the other streams copied as above. The encoder is chosen and opened as encoder_choice.cpp
// says.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <iterator>
#include <map>

#include "media/audio_transcoder.hpp"
#include "media/encoder_choice.hpp"
#include "media/libav_helpers.hpp"
#include "media/segment_file.hpp"
#include "upframe/error.hpp"
#include "upframe/media/frame_sink.hpp"

extern "C" {
#include <libavutil/avstring.h>
#include <libavutil/pixdesc.h>
}

namespace upframe {

using namespace media;
namespace fs = std::filesystem;

namespace {

bool valid(AVRational r) { return r.num > 0 && r.den > 0; }

bool sync_file(const fs::path& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = fsync(fd) == 0;
  close(fd);
  return ok;
}

// Tags that describe the input file rather than its content.
bool is_stale_tag(const std::string& key) {
  static const char* const kStale[] = {
      "encoder", "major_brand", "minor_version",    "compatible_brands",
      "BPS",     "DURATION",    "NUMBER_OF_FRAMES", "NUMBER_OF_BYTES"};
  for (const char* stale : kStale)
    if (av_strcasecmp(key.c_str(), stale) == 0) return true;
  return key.rfind("_STATISTICS", 0) == 0;
}

void copy_metadata(AVDictionary** to, const AVDictionary* from) {
  const AVDictionaryEntry* entry = nullptr;
  while ((entry = av_dict_get(from, "", entry, AV_DICT_IGNORE_SUFFIX)))
    if (!is_stale_tag(entry->key)) av_dict_set(to, entry->key, entry->value, 0);
}

enum class SinkMode { kDirect, kSegment, kJoin };

class VideoSink final : public FrameSink {
 public:
  // `container` names the final output (its extension picks the container); it is `output`
  // except in segment mode.
  VideoSink(SinkMode mode, const fs::path& output, const fs::path& container, const VideoInfo& in,
            int width, int height, const VideoSinkOptions& options);
  ~VideoSink() override {
    if (!finished_) abort();
  }
  void write_unique(int64_t index, const Frame& frame, int64_t pts) override {
    encode(index, frame, pts);
  }
  void write_duplicate(int64_t index, int64_t, const Frame& frame, int64_t pts) override {
    encode(index, frame, pts);
  }
  void finish() override;
  void abort() noexcept override;
  std::vector<std::string> notes() const override { return notes_; }
  // Join mode: remuxes the packets of one segment file.
  void append_segment(const fs::path& segment);

 private:
  [[noreturn]] void fail(const std::string& problem, int64_t index = -1) const {
    throw Error(final_.string(), problem, ExitCode::kProcessingFailed, "save", index);
  }
  void set_up_copies();
  void open_encoder(const Frame& first);
  void set_up_video_stream(const AVCodecParameters* par, AVRational time_base,
                           const std::vector<StreamSideData>& side_data);
  void finish_segment();
  void encode(int64_t index, const Frame& frame, int64_t pts);
  Frame encoder_input(const AVFrame* pixels, int64_t pts) const;
  void drain(int64_t index);
  void copy_until(int64_t ts, AVRational time_base);
  void transcode(int input_index, const AVPacket* packet);
  void close_output() noexcept;

  SinkMode mode_;
  fs::path final_;
  fs::path temporary_;
  const AVOutputFormat* format_ = nullptr;
  std::unique_ptr<SegmentFileWriter> segment_file_;  // segment mode
  std::vector<int64_t> joined_fields_;  // join mode: the first segment's, to check the others
  std::string joined_extradata_;
  int64_t last_joined_dts_ = AV_NOPTS_VALUE;
  VideoInfo in_;
  int width_;
  int height_;
  VideoSinkOptions options_;
  std::string encoder_name_;
  const AVCodec* codec_ = nullptr;
  AVFormatContext* out_ = nullptr;
  AVStream* video_stream_ = nullptr;
  CodecContextPtr encoder_;
  PixelConverter converter_;
  PacketPtr packet_ = make_packet();
  int64_t last_pts_ = AV_NOPTS_VALUE;
  // The second demuxer that feeds the copied streams; copy_map_[input] = output index or -1.
  InputContextPtr copy_input_;
  std::vector<int> copy_map_;
  // Audio streams the container cannot hold as they are, by input index: re-encoded.
  std::map<int, std::unique_ptr<AudioTranscoder>> transcoders_;
  PacketPtr copy_packet_ = make_packet();
  bool copy_pending_ = false;
  bool copy_done_ = true;
  bool finished_ = false;
  std::vector<std::string> notes_;
};

VideoSink::VideoSink(SinkMode mode, const fs::path& output, const fs::path& container,
                     const VideoInfo& in, int width, int height, const VideoSinkOptions& options)
    : mode_(mode),
      final_(output),
      temporary_(temporary_sibling(output)),
      in_(in),
      width_(width),
      height_(height),
      options_(options) {
  std::error_code ec;
  if (mode_ != SinkMode::kSegment && fs::exists(final_, ec)) {
    if (!options_.overwrite) fail("the output already exists (use -y to overwrite)");
    if (!in_.path.empty() && fs::equivalent(final_, in_.path, ec))
      fail("the output is the input file");
    if (fs::is_directory(final_, ec)) fail("the output is a folder, not a video file");
  }
  const AVOutputFormat* format = av_guess_format(nullptr, container.c_str(), nullptr);
  format_ = format;
  if (!format)
    throw UsageError(container.string(),
                     "no container for the extension '" + container.extension().string() + "'");
  encoder_name_ = resolve_encoder(options_.encoder, in_.bit_depth, container);
  codec_ = avcodec_find_encoder_by_name(encoder_name_.c_str());
  if (avformat_query_codec(format, codec_->id, FF_COMPLIANCE_NORMAL) == 0)
    throw UsageError(final_.string(), container_refusal(container, encoder_name_));
  notes_.push_back("encoder " + encoder_name_);
  if (mode_ == SinkMode::kSegment) {
    segment_file_ = std::make_unique<SegmentFileWriter>(temporary_, final_.string());
    return;
  }

  int err = avformat_alloc_output_context2(&out_, format, nullptr, temporary_.c_str());
  if (err < 0 || !out_) fail("cannot set up the output: " + av_error_string(err));
  video_stream_ = avformat_new_stream(out_, nullptr);
  if (!video_stream_) fail("out of memory adding a stream");
  if (!(format->flags & AVFMT_NOFILE)) {
    err = avio_open(&out_->pb, temporary_.c_str(), AVIO_FLAG_WRITE);
    if (err < 0) {
      avformat_free_context(out_);
      out_ = nullptr;
      fail("cannot write in " + final_.parent_path().string() + ": " + av_error_string(err));
    }
  }
  set_up_copies();
}

void VideoSink::set_up_copies() {
  if (in_.path.empty()) return;
  try {
    copy_input_ = open_input(in_.path);
  } catch (const Error& e) {
    notes_.push_back(std::string("other streams not copied: ") + e.what());
    return;
  }
  AVFormatContext* input = copy_input_.get();
  copy_metadata(&out_->metadata, input->metadata);

  // Chapters (the muxer frees them with the context).
  if (input->nb_chapters > 0) {
    out_->chapters = static_cast<AVChapter**>(av_calloc(input->nb_chapters, sizeof(AVChapter*)));
    for (unsigned i = 0; out_->chapters && i < input->nb_chapters; ++i) {
      const AVChapter* from = input->chapters[i];
      auto* to = static_cast<AVChapter*>(av_mallocz(sizeof(AVChapter)));
      if (!to) break;
      to->id = from->id;
      to->time_base = from->time_base;
      to->start = from->start;
      to->end = from->end;
      av_dict_copy(&to->metadata, from->metadata, 0);
      out_->chapters[out_->nb_chapters++] = to;
    }
  }

  const std::string container = out_->oformat->name;
  copy_map_.assign(input->nb_streams, -1);
  for (unsigned i = 0; i < input->nb_streams; ++i) {
    AVStream* from = input->streams[i];
    from->discard = AVDISCARD_ALL;
    if (static_cast<int>(i) == in_.stream_index) continue;
    const AVCodecParameters* par = from->codecpar;
    const std::string codec = avcodec_get_name(par->codec_id);
    auto drop = [&](const std::string& reason) {
      notes_.push_back("stream #" + std::to_string(i) + " (" + codec + ") dropped: " + reason);
    };
    if (!options_.copy_other_streams) {
      drop("copying other streams is off");
      continue;
    }
    const bool cover =
        par->codec_type == AVMEDIA_TYPE_VIDEO && (from->disposition & AV_DISPOSITION_ATTACHED_PIC);
    if (par->codec_type == AVMEDIA_TYPE_VIDEO && !cover) {
      drop("another video stream (only the upscaled one is written)");
      continue;
    }
    if (par->codec_type == AVMEDIA_TYPE_ATTACHMENT) {
      if (container != "matroska") {
        drop("the " + container + " container holds no attachments");
        continue;
      }
    } else if (par->codec_type != AVMEDIA_TYPE_AUDIO && par->codec_type != AVMEDIA_TYPE_SUBTITLE &&
               !cover) {
      drop("a data stream (not copied)");
      continue;
    } else if (avformat_query_codec(out_->oformat, par->codec_id, FF_COMPLIANCE_NORMAL) != 1) {
      const AVCodec* audio = par->codec_type == AVMEDIA_TYPE_AUDIO && !cover
                                 ? audio_encoder_for(out_->oformat)
                                 : nullptr;
      if (!audio) {
        drop("the " + container + " container cannot hold " + codec);
        continue;
      }
      // Re-encoded (the one log line is this note, logged with the job's notes).
      auto transcoder = std::make_unique<AudioTranscoder>(
          final_.string(), from, audio, (out_->oformat->flags & AVFMT_GLOBALHEADER) != 0);
      AVStream* to = avformat_new_stream(out_, nullptr);
      if (!to || avcodec_parameters_from_context(to->codecpar, transcoder->encoder()) < 0)
        fail("cannot set up the re-encoded stream #" + std::to_string(i));
      to->time_base = transcoder->encoder()->time_base;
      to->disposition = from->disposition;
      copy_metadata(&to->metadata, from->metadata);
      notes_.push_back("stream #" + std::to_string(i) + " (" + codec + ") re-encoded to " +
                       audio->name + ": the " + container + " container cannot hold " + codec);
      transcoders_[int(i)] = std::move(transcoder);
      from->discard = AVDISCARD_DEFAULT;
      copy_map_[i] = to->index;
      copy_done_ = false;
      continue;
    }
    AVStream* to = avformat_new_stream(out_, nullptr);
    if (!to || avcodec_parameters_copy(to->codecpar, par) < 0)
      fail("cannot copy stream #" + std::to_string(i));
    to->codecpar->codec_tag = 0;
    to->time_base = from->time_base;
    to->disposition = from->disposition;
    av_dict_copy(&to->metadata, from->metadata, 0);
    if (par->codec_type != AVMEDIA_TYPE_ATTACHMENT) {
      // Cover art comes as one queued packet at the start, like ffmpeg's stream copy.
      from->discard = AVDISCARD_DEFAULT;
      copy_map_[i] = to->index;
      copy_done_ = false;
    }
  }
}

void VideoSink::open_encoder(const Frame& first) {
  encoder_.reset(avcodec_alloc_context3(codec_));
  if (!encoder_) fail("out of memory allocating an encoder");
  AVCodecContext* ctx = encoder_.get();
  const AVFrame* f = first.av();
  if (first.width() != width_ || first.height() != height_)
    spdlog::debug("{}: frames are {}x{}, expected {}x{}", final_.string(), first.width(),
                  first.height(), width_, height_);
  ctx->width = first.width();
  ctx->height = first.height();
  ctx->pix_fmt = encoder_pixel_format(codec_, first.data_format(), in_.stream_pixel_format);
  ctx->time_base = valid(in_.time_base) ? in_.time_base : AVRational{1, 90000};
  if (valid(in_.avg_frame_rate)) ctx->framerate = in_.avg_frame_rate;
  ctx->sample_aspect_ratio =
      valid(in_.sample_aspect_ratio) ? in_.sample_aspect_ratio : f->sample_aspect_ratio;
  ctx->color_primaries =
      f->color_primaries != AVCOL_PRI_UNSPECIFIED ? f->color_primaries : in_.color_primaries;
  ctx->color_trc = f->color_trc != AVCOL_TRC_UNSPECIFIED ? f->color_trc : in_.color_trc;
  ctx->colorspace = f->colorspace != AVCOL_SPC_UNSPECIFIED ? f->colorspace : in_.colorspace;
  ctx->color_range = f->color_range != AVCOL_RANGE_UNSPECIFIED ? f->color_range : in_.color_range;
  ctx->chroma_sample_location =
      f->chroma_location != AVCHROMA_LOC_UNSPECIFIED ? f->chroma_location : in_.chroma_location;
  if (first.data_format() != ctx->pix_fmt) {
    // The converter writes RGB sources as BT.601 limited-range YUV.
    const AVPixFmtDescriptor* desc = av_pix_fmt_desc_get(first.data_format());
    if (desc && (desc->flags & AV_PIX_FMT_FLAG_RGB)) {
      ctx->colorspace = AVCOL_SPC_BT470BG;
      ctx->color_range = AVCOL_RANGE_MPEG;
    }
  }
  ctx->thread_count = options_.threads;
  if (format_->flags & AVFMT_GLOBALHEADER) ctx->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;

  AVDictionary* opts = encoder_open_options(encoder_name_, options_.crf, ctx->pix_fmt, f);
  int err = avcodec_open2(ctx, codec_, &opts);
  av_dict_free(&opts);
  if (err < 0) fail("cannot open the encoder " + encoder_name_ + ": " + av_error_string(err));
  notes_.front() = "encoder " + encoder_name_ + " (" + av_get_pix_fmt_name(ctx->pix_fmt) + ")";

  if (mode_ == SinkMode::kSegment) {
    segment_file_->write_header(ctx, hdr_side_data(f));
    return;
  }
  CodecParametersPtr par(avcodec_parameters_alloc());
  if (!par || avcodec_parameters_from_context(par.get(), ctx) < 0)
    fail("cannot set up the video stream");
  set_up_video_stream(par.get(), ctx->time_base, hdr_side_data(f));
}

void VideoSink::set_up_video_stream(const AVCodecParameters* par, AVRational time_base,
                                    const std::vector<StreamSideData>& side_data) {
  AVStream* st = video_stream_;
  if (avcodec_parameters_copy(st->codecpar, par) < 0) fail("cannot set up the video stream");
  st->codecpar->codec_tag = 0;
  st->time_base = time_base;
  st->avg_frame_rate = in_.avg_frame_rate;
  st->sample_aspect_ratio = par->sample_aspect_ratio;
  const std::string container = out_->oformat->name;
  if (par->codec_id == AV_CODEC_ID_HEVC && (container == "mp4" || container == "mov"))
    st->codecpar->codec_tag = MKTAG('h', 'v', 'c', '1');  // plays on Apple devices
  for (const StreamSideData& sd : side_data) {
    uint8_t* dst = av_stream_new_side_data(st, AVPacketSideDataType(sd.type), sd.bytes.size());
    if (dst) std::copy(sd.bytes.begin(), sd.bytes.end(), dst);
  }
  if (copy_input_ && in_.stream_index >= 0 &&
      in_.stream_index < static_cast<int>(copy_input_->nb_streams)) {
    const AVStream* from = copy_input_->streams[in_.stream_index];
    copy_metadata(&st->metadata, from->metadata);
    // Rotation applies to the upscaled frames as it did to the input.
    size_t size = 0;
    if (const uint8_t* matrix = av_stream_get_side_data(from, AV_PKT_DATA_DISPLAYMATRIX, &size)) {
      uint8_t* dst = av_stream_new_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, size);
      if (dst) std::copy(matrix, matrix + size, dst);
    }
  }
  int err = avformat_write_header(out_, nullptr);
  if (err < 0) fail("cannot write the file header: " + av_error_string(err));
}

void VideoSink::append_segment(const fs::path& segment) {
  SegmentFileReader reader(segment);
  if (joined_fields_.empty()) {
    set_up_video_stream(reader.parameters(), reader.time_base(), reader.side_data());
    joined_fields_ = reader.fields();
    joined_extradata_ = reader.extradata();
    notes_.front() = std::string("encoder ") + encoder_name_ + " (" +
                     av_get_pix_fmt_name(AVPixelFormat(reader.parameters()->format)) + ")";
  } else if (reader.fields() != joined_fields_ || reader.extradata() != joined_extradata_) {
    // Each segment's encoder was set up alike; a difference would make an unplayable stream.
    throw Error(segment.string(), "segment encoded differently from the first one",
                ExitCode::kProcessingFailed, "save");
  }
  while (reader.next(packet_.get())) {
    av_packet_rescale_ts(packet_.get(), reader.time_base(), video_stream_->time_base);
    packet_->stream_index = video_stream_->index;
    if (packet_->dts != AV_NOPTS_VALUE && last_joined_dts_ != AV_NOPTS_VALUE &&
        packet_->dts <= last_joined_dts_)
      throw Error(segment.string(),
                  "segment's timestamps overlap the previous segment's (dts " +
                      std::to_string(packet_->dts) + " after " + std::to_string(last_joined_dts_) +
                      ")",
                  ExitCode::kProcessingFailed, "save");
    if (packet_->dts != AV_NOPTS_VALUE) last_joined_dts_ = packet_->dts;
    int64_t ts = packet_->dts != AV_NOPTS_VALUE ? packet_->dts : packet_->pts;
    if (ts != AV_NOPTS_VALUE) copy_until(ts, video_stream_->time_base);
    int err = av_interleaved_write_frame(out_, packet_.get());
    if (err < 0) fail("cannot write: " + av_error_string(err));
  }
}

void VideoSink::encode(int64_t index, const Frame& frame, int64_t pts) {
  if (finished_ || mode_ == SinkMode::kJoin) fail("write after finish", index);
  if (!frame) fail("internal: no upscaled pixels for this frame", index);
  if (!encoder_) open_encoder(frame.to_host());
  if (frame.width() != encoder_->width || frame.height() != encoder_->height)
    fail("frame size changed from " + std::to_string(encoder_->width) + "x" +
             std::to_string(encoder_->height) + " to " + std::to_string(frame.width()) + "x" +
             std::to_string(frame.height()),
         index);
  const Frame converted = converter_.convert(frame, encoder_->pix_fmt);
  if (last_pts_ != AV_NOPTS_VALUE && pts <= last_pts_) pts = last_pts_ + 1;
  last_pts_ = pts;
  const Frame clean = encoder_input(converted.av(), pts);
  int err = avcodec_send_frame(encoder_.get(), clean.av());
  if (err < 0) fail("cannot encode: " + av_error_string(err), index);
  drain(index);
}

// A new frame holding only the pixels (referenced, not copied), the timestamp and the
// stream's description: nothing a decoder or an earlier stage left on the frame (picture
// type, key-frame and interlace flags, side data such as captions or SEI, opaque fields,
// packet positions) reaches the encoder, so identical input gives identical packets.
Frame VideoSink::encoder_input(const AVFrame* pixels, int64_t pts) const {
  AVFrame* f = av_frame_alloc();
  if (!f) fail("out of memory");
  Frame owner = Frame::adopt(f);
  f->format = pixels->format;
  f->width = pixels->width;
  f->height = pixels->height;
  for (size_t i = 0; i < std::size(pixels->buf) && pixels->buf[i]; ++i) {
    f->buf[i] = av_buffer_ref(pixels->buf[i]);
    if (!f->buf[i]) fail("out of memory");
  }
  for (size_t i = 0; i < std::size(pixels->data); ++i) {
    f->data[i] = pixels->data[i];
    f->linesize[i] = pixels->linesize[i];
  }
  f->pts = pts;
  f->sample_aspect_ratio = encoder_->sample_aspect_ratio;
  f->color_range = encoder_->color_range;
  f->color_primaries = encoder_->color_primaries;
  f->color_trc = encoder_->color_trc;
  f->colorspace = encoder_->colorspace;
  f->chroma_location = encoder_->chroma_sample_location;
  return owner;
}

void VideoSink::drain(int64_t index) {
  for (;;) {
    int err = avcodec_receive_packet(encoder_.get(), packet_.get());
    if (err == AVERROR(EAGAIN) || err == AVERROR_EOF) return;
    if (err < 0) fail("cannot encode: " + av_error_string(err), index);
    if (mode_ == SinkMode::kSegment) {
      segment_file_->write_packet(packet_.get());
      av_packet_unref(packet_.get());
      continue;
    }
    av_packet_rescale_ts(packet_.get(), encoder_->time_base, video_stream_->time_base);
    packet_->stream_index = video_stream_->index;
    int64_t ts = packet_->dts != AV_NOPTS_VALUE ? packet_->dts : packet_->pts;
    if (ts != AV_NOPTS_VALUE) copy_until(ts, video_stream_->time_base);
    err = av_interleaved_write_frame(out_, packet_.get());
    if (err < 0) fail("cannot write: " + av_error_string(err), index);
  }
}

void VideoSink::copy_until(int64_t ts, AVRational time_base) {
  while (!copy_done_) {
    if (!copy_pending_) {
      int err = av_read_frame(copy_input_.get(), copy_packet_.get());
      if (err < 0) {
        if (err != AVERROR_EOF)
          spdlog::warn("{}: stopped copying the other streams: {}", in_.path, av_error_string(err));
        copy_done_ = true;
        for (auto& [index, transcoder] : transcoders_) transcode(index, nullptr);
        return;
      }
      if (copy_packet_->stream_index >= static_cast<int>(copy_map_.size()) ||
          copy_map_[copy_packet_->stream_index] < 0) {
        av_packet_unref(copy_packet_.get());
        continue;
      }
      copy_pending_ = true;
    }
    AVPacket* pkt = copy_packet_.get();
    const AVStream* from = copy_input_->streams[pkt->stream_index];
    int64_t pkt_ts = pkt->dts != AV_NOPTS_VALUE ? pkt->dts : pkt->pts;
    if (pkt_ts != AV_NOPTS_VALUE && ts != INT64_MAX &&
        av_compare_ts(pkt_ts, from->time_base, ts, time_base) > 0)
      return;  // later than the video written so far: keep it for later
    if (transcoders_.count(pkt->stream_index)) {
      copy_pending_ = false;
      transcode(pkt->stream_index, pkt);
      av_packet_unref(pkt);
      continue;
    }
    AVStream* to = out_->streams[copy_map_[pkt->stream_index]];
    pkt->stream_index = to->index;
    av_packet_rescale_ts(pkt, from->time_base, to->time_base);
    pkt->pos = -1;
    copy_pending_ = false;
    int err = av_interleaved_write_frame(out_, pkt);
    if (err < 0) fail("cannot write a copied packet: " + av_error_string(err));
  }
}

void VideoSink::transcode(int input_index, const AVPacket* packet) {
  AudioTranscoder& transcoder = *transcoders_.at(input_index);
  AVStream* to = out_->streams[copy_map_[input_index]];
  transcoder.send(packet, [&](AVPacket* out) {
    av_packet_rescale_ts(out, transcoder.encoder()->time_base, to->time_base);
    out->stream_index = to->index;
    int err = av_interleaved_write_frame(out_, out);
    if (err < 0) fail("cannot write a re-encoded audio packet: " + av_error_string(err));
  });
}

void VideoSink::finish() {
  if (finished_) return;
  int err = 0;
  if (mode_ == SinkMode::kJoin) {
    if (joined_fields_.empty()) fail("no segments to join");
  } else {
    if (!encoder_) fail("no frames were written");
    err = avcodec_send_frame(encoder_.get(), nullptr);
    if (err < 0 && err != AVERROR_EOF) fail("cannot flush the encoder: " + av_error_string(err));
    drain(-1);
  }
  if (mode_ == SinkMode::kSegment) {
    finish_segment();
    return;
  }
  copy_until(INT64_MAX, AVRational{1, 1});
  err = av_write_trailer(out_);
  if (err < 0) fail("cannot finish the file: " + av_error_string(err));
  if (!(out_->oformat->flags & AVFMT_NOFILE)) {
    err = avio_closep(&out_->pb);
    if (err < 0) fail("cannot write: " + av_error_string(err));
  }
  close_output();
  // On disk before it takes the output's name, so the name never points at a partial file.
  if (!sync_file(temporary_)) fail(std::string("cannot sync the file: ") + std::strerror(errno));
  if (options_.before_rename) options_.before_rename(temporary_);
  std::error_code ec;
  fs::rename(temporary_, final_, ec);
  if (ec) fail("cannot move the finished file into place: " + ec.message());
  finished_ = true;
}

// The segment file is synced to disk before the rename: a segment named in the manifest
// survives a crash whole.
void VideoSink::finish_segment() {
  segment_file_->finish();
  segment_file_.reset();
  encoder_.reset();
  std::error_code ec;
  fs::rename(temporary_, final_, ec);
  if (ec) fail("cannot move the finished segment into place: " + ec.message());
  finished_ = true;
}

void VideoSink::close_output() noexcept {
  segment_file_.reset();
  encoder_.reset();
  if (!out_) return;
  if (out_->pb && !(out_->oformat->flags & AVFMT_NOFILE)) avio_closep(&out_->pb);
  avformat_free_context(out_);
  out_ = nullptr;
  encoder_.reset();
  transcoders_.clear();
  copy_input_.reset();
}

void VideoSink::abort() noexcept {
  close_output();
  std::error_code ec;
  fs::remove(temporary_, ec);
  finished_ = true;
}

}  // namespace

std::unique_ptr<FrameSink> make_video_sink(const fs::path& output, const VideoInfo& in, int width,
                                           int height, const VideoSinkOptions& options) {
  return std::make_unique<VideoSink>(SinkMode::kDirect, output, output, in, width, height, options);
}

std::unique_ptr<FrameSink> make_video_segment_sink(const fs::path& segment,
                                                   const fs::path& container, const VideoInfo& in,
                                                   int width, int height,
                                                   const VideoSinkOptions& options) {
  return std::make_unique<VideoSink>(SinkMode::kSegment, segment, container, in, width, height,
                                     options);
}

std::vector<std::string> join_video_segments(const fs::path& output,
                                             const std::vector<fs::path>& segments,
                                             const VideoInfo& in, const VideoSinkOptions& options) {
  VideoSink sink(SinkMode::kJoin, output, output, in, 0, 0, options);
  for (const fs::path& segment : segments) sink.append_segment(segment);
  sink.finish();
  return sink.notes();
}

}  // namespace upframe
