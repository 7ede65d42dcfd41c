// upframe's segment file (see segment_file.hpp).
#include "media/segment_file.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "upframe/error.hpp"
#include "upframe/media/frame_sink.hpp"

extern "C" {
#include <libavutil/crc.h>
}

namespace upframe::media {

namespace fs = std::filesystem;

namespace {

constexpr char kSegmentMagic[8] = {'U', 'P', 'F', 'S', 'E', 'G', '0', '2'};
constexpr char kSegmentMagicPrefix[6] = {'U', 'P', 'F', 'S', 'E', 'G'};

uint32_t crc32_update(uint32_t crc, const void* data, size_t size) {
  if (size == 0) return crc;  // av_crc reads from `data` even for no bytes
  return av_crc(av_crc_get_table(AV_CRC_32_IEEE_LE), crc, static_cast<const uint8_t*>(data), size);
}

// The codec parameters a segment file keeps, with the time base of its packets.
std::vector<int64_t> segment_fields(const AVCodecParameters* p, AVRational time_base) {
  return {p->codec_type,
          p->codec_id,
          p->format,
          p->width,
          p->height,
          p->sample_aspect_ratio.num,
          p->sample_aspect_ratio.den,
          p->field_order,
          p->color_range,
          p->color_primaries,
          p->color_trc,
          p->color_space,
          p->chroma_location,
          p->profile,
          p->level,
          p->bits_per_raw_sample,
          p->bits_per_coded_sample,
          p->video_delay,
          p->bit_rate,
          time_base.num,
          time_base.den};
}

void set_segment_fields(AVCodecParameters* p, AVRational& time_base,
                        const std::vector<int64_t>& f) {
  size_t i = 0;
  p->codec_type = AVMediaType(f[i++]);
  p->codec_id = AVCodecID(f[i++]);
  p->format = int(f[i++]);
  p->width = int(f[i++]);
  p->height = int(f[i++]);
  p->sample_aspect_ratio.num = int(f[i++]);
  p->sample_aspect_ratio.den = int(f[i++]);
  p->field_order = AVFieldOrder(f[i++]);
  p->color_range = AVColorRange(f[i++]);
  p->color_primaries = AVColorPrimaries(f[i++]);
  p->color_trc = AVColorTransferCharacteristic(f[i++]);
  p->color_space = AVColorSpace(f[i++]);
  p->chroma_location = AVChromaLocation(f[i++]);
  p->profile = int(f[i++]);
  p->level = int(f[i++]);
  p->bits_per_raw_sample = int(f[i++]);
  p->bits_per_coded_sample = int(f[i++]);
  p->video_delay = int(f[i++]);
  p->bit_rate = f[i++];
  time_base.num = int(f[i++]);
  time_base.den = int(f[i++]);
}

}  // namespace

std::vector<StreamSideData> hdr_side_data(const AVFrame* frame) {
  struct Pair {
    AVFrameSideDataType frame_type;
    AVPacketSideDataType stream_type;
  };
  std::vector<StreamSideData> out;
  for (Pair pair :
       {Pair{AV_FRAME_DATA_MASTERING_DISPLAY_METADATA, AV_PKT_DATA_MASTERING_DISPLAY_METADATA},
        Pair{AV_FRAME_DATA_CONTENT_LIGHT_LEVEL, AV_PKT_DATA_CONTENT_LIGHT_LEVEL}}) {
    const AVFrameSideData* sd = av_frame_get_side_data(frame, pair.frame_type);
    if (!sd) continue;
    out.push_back(
        {pair.stream_type, std::string(reinterpret_cast<const char*>(sd->data), sd->size)});
  }
  return out;
}

// --- writing ---

SegmentFileWriter::SegmentFileWriter(const fs::path& path, const std::string& name)
    : file_(std::fopen(path.c_str(), "wb")), name_(name) {
  if (!file_)
    throw Error(
        name_,
        "cannot write in " + fs::path(name_).parent_path().string() + ": " + std::strerror(errno),
        ExitCode::kProcessingFailed, "save");
}

SegmentFileWriter::~SegmentFileWriter() { close(); }

void SegmentFileWriter::i64(int64_t v) { bytes(&v, sizeof v); }

void SegmentFileWriter::bytes(const void* data, size_t size) {
  if (size && std::fwrite(data, 1, size, file_) != size) ok_ = false;
  crc_ = crc32_update(crc_, data, size);
}

void SegmentFileWriter::blob(const void* data, size_t size) {
  i64(int64_t(size));
  bytes(data, size);
}

void SegmentFileWriter::check() const {
  if (!ok_)
    throw Error(name_, std::string("cannot write: ") + std::strerror(errno),
                ExitCode::kProcessingFailed, "save");
}

void SegmentFileWriter::write_header(const AVCodecContext* encoder,
                                     const std::vector<StreamSideData>& side_data) {
  CodecParametersPtr par(avcodec_parameters_alloc());
  if (!par || avcodec_parameters_from_context(par.get(), encoder) < 0)
    throw Error(name_, "cannot describe the video stream", ExitCode::kProcessingFailed, "save");
  bytes(kSegmentMagic, sizeof kSegmentMagic);
  const std::vector<int64_t> fields = segment_fields(par.get(), encoder->time_base);
  i64(int64_t(fields.size()));
  for (int64_t v : fields) i64(v);
  blob(par->extradata, size_t(par->extradata_size));
  i64(int64_t(side_data.size()));
  for (const StreamSideData& sd : side_data) {
    i64(sd.type);
    blob(sd.bytes.data(), sd.bytes.size());
  }
  check();
}

void SegmentFileWriter::write_packet(const AVPacket* packet) {
  i64(packet->pts);
  i64(packet->dts);
  i64(packet->duration);
  i64(packet->flags);
  blob(packet->data, size_t(packet->size));
  check();
}

void SegmentFileWriter::finish() {
  for (int i = 0; i < 4; ++i) i64(0);
  i64(-1);
  const uint8_t crc[4] = {uint8_t(crc_), uint8_t(crc_ >> 8), uint8_t(crc_ >> 16),
                          uint8_t(crc_ >> 24)};
  bytes(crc, sizeof crc);
  bool ok = ok_ && std::fflush(file_) == 0 && fsync(fileno(file_)) == 0;
  ok = std::fclose(file_) == 0 && ok;
  file_ = nullptr;
  ok_ = ok;
  check();
}

void SegmentFileWriter::close() noexcept {
  if (file_) std::fclose(file_);
  file_ = nullptr;
}

// --- reading ---

SegmentFileReader::SegmentFileReader(const fs::path& segment)
    : file_(std::fopen(segment.c_str(), "rb")),
      name_(segment.string()),
      par_(avcodec_parameters_alloc()) {
  if (!file_) fail(std::string("cannot read the segment: ") + std::strerror(errno));
  if (!par_) fail("out of memory");
  char magic[sizeof kSegmentMagic];
  bytes(magic, sizeof magic);
  if (!std::equal(magic, magic + sizeof magic, kSegmentMagic)) {
    if (std::equal(kSegmentMagicPrefix, kSegmentMagicPrefix + sizeof kSegmentMagicPrefix, magic))
      fail("segment file of another upframe version");
    fail("not an upframe segment file");
  }
  fields_.resize(size_t(std::clamp<int64_t>(i64(), 0, 256)));
  for (int64_t& v : fields_) v = i64();
  if (fields_.size() != segment_fields(par_.get(), time_base_).size())
    fail("segment file of another version");
  set_segment_fields(par_.get(), time_base_, fields_);
  extradata_ = blob(1 << 24);
  for (int64_t n = i64(); n > 0; --n) {
    int64_t type = i64();
    side_data_.push_back({type, blob(1 << 20)});
  }
  if (!extradata_.empty()) {
    par_->extradata =
        static_cast<uint8_t*>(av_mallocz(extradata_.size() + AV_INPUT_BUFFER_PADDING_SIZE));
    if (!par_->extradata) fail("out of memory");
    std::copy(extradata_.begin(), extradata_.end(), par_->extradata);
    par_->extradata_size = int(extradata_.size());
  }
}

SegmentFileReader::~SegmentFileReader() {
  if (file_) std::fclose(file_);
}

bool SegmentFileReader::next(AVPacket* packet) {
  int64_t pts = i64(), dts = i64(), duration = i64(), flags = i64();
  int64_t size = i64();
  if (size == -1) {  // end record: the segment is whole if its checksum matches
    const uint32_t computed = crc_;
    uint8_t stored[4];
    bytes(stored, sizeof stored);
    const uint32_t expected = uint32_t(stored[0]) | uint32_t(stored[1]) << 8 |
                              uint32_t(stored[2]) << 16 | uint32_t(stored[3]) << 24;
    if (computed != expected)
      fail("damaged: checksum mismatch (the file changed after it was written)");
    return false;
  }
  if (size < 0 || size > (int64_t(1) << 30)) fail("segment file is corrupt");
  av_packet_unref(packet);
  if (av_new_packet(packet, int(size)) < 0) fail("out of memory");
  bytes(packet->data, size_t(size));
  packet->pts = pts;
  packet->dts = dts;
  packet->duration = duration;
  packet->flags = int(flags);
  return true;
}

int64_t SegmentFileReader::i64() {
  int64_t v = 0;
  bytes(&v, sizeof v);
  return v;
}

void SegmentFileReader::bytes(void* data, size_t size) {
  if (size && std::fread(data, 1, size, file_) != size) fail("segment file is cut short");
  crc_ = crc32_update(crc_, data, size);
}

std::string SegmentFileReader::blob(int64_t limit) {
  int64_t size = i64();
  if (size < 0 || size > limit) fail("segment file is corrupt");
  std::string out(size_t(size), '\0');
  bytes(out.data(), out.size());
  return out;
}

void SegmentFileReader::fail(const std::string& problem) const {
  throw Error(name_, problem, ExitCode::kProcessingFailed, "save");
}

}  // namespace upframe::media

namespace upframe {

std::string segment_file_problem(const std::filesystem::path& segment) {
  try {
    media::SegmentFileReader reader(segment);
    media::PacketPtr packet = media::make_packet();
    while (reader.next(packet.get())) {
    }
    return {};
  } catch (const Error& e) {
    return e.problem();
  }
}

}  // namespace upframe
