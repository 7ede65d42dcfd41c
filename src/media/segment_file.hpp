// upframe's segment file: one segment of a resumable or distributed video output, its packets
// with their exact timestamps and the stream's codec parameters, with no container (so no
// muxer rounds timestamps or shifts them).
//
// Layout: "UPFSEG02", the number of header fields and the fields (int64: codec parameters
// and time base, see segment_fields), the extradata, the stream side data, then one record a
// packet (pts, dts, duration, flags, size, bytes), an end record (size -1) and the CRC-32
// (IEEE, little-endian) of every byte before it. The reader checks the CRC at the end record,
// so a flipped bit anywhere in a segment is an error naming it, never a silent join.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "media/libav_helpers.hpp"

namespace upframe::media {

struct StreamSideData {
  int64_t type;  // AVPacketSideDataType
  std::string bytes;
};

// HDR static metadata of a frame, for the stream (muxers write it: Matroska, mp4).
std::vector<StreamSideData> hdr_side_data(const AVFrame* frame);

// Writes a segment file at `path` (the caller renames it into place). Errors are
// upframe::Error naming `name` (the segment's final path).
class SegmentFileWriter {
 public:
  SegmentFileWriter(const std::filesystem::path& path, const std::string& name);
  ~SegmentFileWriter();
  SegmentFileWriter(const SegmentFileWriter&) = delete;
  SegmentFileWriter& operator=(const SegmentFileWriter&) = delete;

  // The stream as `encoder` (open) describes it, with `side_data`.
  void write_header(const AVCodecContext* encoder, const std::vector<StreamSideData>& side_data);
  void write_packet(const AVPacket* packet);
  // The end record, then the file synced to disk and closed: a segment renamed after this
  // survives a crash whole.
  void finish();
  // Closes the file as it is (the caller removes it).
  void close() noexcept;

 private:
  void i64(int64_t v);
  void bytes(const void* data, size_t size);
  void blob(const void* data, size_t size);
  void check() const;

  FILE* file_ = nullptr;
  std::string name_;
  bool ok_ = true;
  uint32_t crc_ = 0;
};

// Reads a segment file: the header at construction, then the packets in order. Errors are
// upframe::Error naming the segment ("not an upframe segment file", "cut short", "corrupt").
class SegmentFileReader {
 public:
  explicit SegmentFileReader(const std::filesystem::path& segment);
  ~SegmentFileReader();
  SegmentFileReader(const SegmentFileReader&) = delete;
  SegmentFileReader& operator=(const SegmentFileReader&) = delete;

  // The header fields (codec parameters and time base) and extradata, equal for segments
  // encoded alike.
  const std::vector<int64_t>& fields() const { return fields_; }
  const std::string& extradata() const { return extradata_; }
  // Codec parameters (with the extradata) and the packets' time base.
  const AVCodecParameters* parameters() const { return par_.get(); }
  AVRational time_base() const { return time_base_; }
  const std::vector<StreamSideData>& side_data() const { return side_data_; }
  // The next packet into `packet` (timestamps in time_base()); false after the last one,
  // whose checksum then matched (an Error "damaged: checksum mismatch" otherwise).
  bool next(AVPacket* packet);

 private:
  int64_t i64();
  void bytes(void* data, size_t size);
  std::string blob(int64_t limit);
  [[noreturn]] void fail(const std::string& problem) const;

  FILE* file_ = nullptr;
  std::string name_;
  std::vector<int64_t> fields_;
  std::string extradata_;
  CodecParametersPtr par_;
  AVRational time_base_{0, 1};
  std::vector<StreamSideData> side_data_;
  uint32_t crc_ = 0;
};

}  // namespace upframe::media
