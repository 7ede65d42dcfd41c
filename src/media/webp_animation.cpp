#include "media/webp_animation.hpp"

#include <webp/demux.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

#include "upframe/error.hpp"

namespace upframe::media {

namespace fs = std::filesystem;

namespace {

std::string read_head(const fs::path& path, size_t bytes) {
  std::ifstream in(path, std::ios::binary);
  std::string head(bytes, '\0');
  in.read(head.data(), std::streamsize(bytes));
  head.resize(size_t(std::max<std::streamsize>(0, in.gcount())));
  return head;
}

uint32_t be32(const std::string& s, size_t at) {
  return uint32_t(uint8_t(s[at])) << 24 | uint32_t(uint8_t(s[at + 1])) << 16 |
         uint32_t(uint8_t(s[at + 2])) << 8 | uint32_t(uint8_t(s[at + 3]));
}

}  // namespace

bool is_animated_webp(const fs::path& path) {
  // RIFF size WEBP, then the VP8X chunk whose first flag byte has the animation bit (0x02).
  const std::string head = read_head(path, 21);
  return head.size() == 21 && head.compare(0, 4, "RIFF") == 0 && head.compare(8, 4, "WEBP") == 0 &&
         head.compare(12, 4, "VP8X") == 0 && (uint8_t(head[20]) & 0x02);
}

bool is_apng(const fs::path& path) {
  // The signature, then chunks (length, type, data, CRC) up to the first IDAT: acTL must
  // come before it in an APNG. 64 KiB covers any realistic header (palettes, ICC profiles).
  const std::string head = read_head(path, 64 * 1024);
  static const char kSignature[] = "\x89PNG\r\n\x1a\n";
  if (head.size() < 8 || head.compare(0, 8, kSignature, 8) != 0) return false;
  for (size_t at = 8; at + 8 <= head.size();) {
    const uint32_t length = be32(head, at);
    const std::string type = head.substr(at + 4, 4);
    if (type == "acTL") return true;
    if (type == "IDAT" || type == "IEND") return false;
    at += 12 + size_t(length);
  }
  return false;
}

struct WebpAnimationReader::Impl {
  std::string path;
  std::vector<uint8_t> bytes;
  WebPAnimDecoder* decoder = nullptr;
  WebPAnimInfo info{};
  int64_t duration_ms = 0;
  bool variable = false;
  int64_t last_end = 0;
  int64_t frames_out = 0;

  [[noreturn]] void fail(const std::string& problem) const {
    throw Error(path, problem, ExitCode::kProcessingFailed, "decode", frames_out);
  }
};

WebpAnimationReader::WebpAnimationReader(const fs::path& path) : impl_(std::make_unique<Impl>()) {
  Impl& d = *impl_;
  d.path = path.string();
  std::ifstream in(path, std::ios::binary);
  if (!in) d.fail("cannot read the file");
  d.bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  WebPData data{d.bytes.data(), d.bytes.size()};
  WebPAnimDecoderOptions options;
  if (!WebPAnimDecoderOptionsInit(&options)) d.fail("libwebp version mismatch");
  options.color_mode = MODE_RGBA;
  options.use_threads = 1;
  d.decoder = WebPAnimDecoderNew(&data, &options);
  if (!d.decoder) d.fail("damaged or truncated animated WebP (libwebp cannot read it)");
  if (!WebPAnimDecoderGetInfo(d.decoder, &d.info) || d.info.frame_count == 0 ||
      d.info.canvas_width == 0 || d.info.canvas_height == 0)
    d.fail("animated WebP without frames");
  // Durations from the demuxer, before decoding: the stream's length and whether it varies.
  const WebPDemuxer* demux = WebPAnimDecoderGetDemuxer(d.decoder);
  WebPIterator it;
  if (WebPDemuxGetFrame(demux, 1, &it)) {
    const int first = it.duration;
    do {
      d.duration_ms += it.duration;
      d.variable = d.variable || it.duration != first;
    } while (WebPDemuxNextFrame(&it));
    WebPDemuxReleaseIterator(&it);
  }
}

WebpAnimationReader::~WebpAnimationReader() {
  if (impl_->decoder) WebPAnimDecoderDelete(impl_->decoder);
}

int WebpAnimationReader::width() const { return int(impl_->info.canvas_width); }
int WebpAnimationReader::height() const { return int(impl_->info.canvas_height); }
int64_t WebpAnimationReader::frame_count() const { return impl_->info.frame_count; }
int64_t WebpAnimationReader::duration_ms() const { return impl_->duration_ms; }
bool WebpAnimationReader::variable_durations() const { return impl_->variable; }

std::optional<Frame> WebpAnimationReader::next() {
  Impl& d = *impl_;
  if (!WebPAnimDecoderHasMoreFrames(d.decoder)) {
    if (d.frames_out < int64_t(d.info.frame_count))
      d.fail("truncated or damaged: decoded " + std::to_string(d.frames_out) + " of the " +
             std::to_string(d.info.frame_count) + " frames the file lists");
    return std::nullopt;
  }
  uint8_t* pixels = nullptr;
  int end_ms = 0;  // libwebp gives each frame's end time
  if (!WebPAnimDecoderGetNext(d.decoder, &pixels, &end_ms))
    d.fail("cannot decode (damaged or truncated animated WebP)");
  Frame frame = Frame::allocate(width(), height(), AV_PIX_FMT_RGBA);
  AVFrame* f = frame.av();
  const size_t row = size_t(width()) * 4;
  for (int y = 0; y < height(); ++y)
    std::memcpy(f->data[0] + size_t(y) * f->linesize[0], pixels + size_t(y) * row, row);
  f->pts = d.last_end;
  f->pkt_duration = std::max<int64_t>(1, end_ms - d.last_end);
  f->color_range = AVCOL_RANGE_JPEG;
  f->sample_aspect_ratio = AVRational{1, 1};
  d.last_end = end_ms;
  ++d.frames_out;
  return frame;
}

}  // namespace upframe::media
