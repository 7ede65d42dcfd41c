// Still images through the same demuxer/decoder as video, and libavcodec's image encoders.
#include "upframe/media/image_io.hpp"

#include "media/libav_helpers.hpp"
#include "media/webp_animation.hpp"
#include "upframe/error.hpp"
#include "upframe/media/decoder.hpp"

namespace upframe {

using namespace media;
namespace fs = std::filesystem;

bool is_animated_image(const fs::path& path) { return is_apng(path) || is_animated_webp(path); }

Frame read_image(const fs::path& path) {
  DecoderOptions options;
  options.threads = 1;  // one picture: frame threads would only add latency
  VideoDecoder decoder(path, options);
  std::optional<Frame> frame = decoder.next();
  if (!frame)
    throw Error(path.string(), "no image in the file", ExitCode::kProcessingFailed, "decode");
  return *frame;
}

std::string encode_image(const Frame& frame, const std::string& format, int quality,
                         const std::string& name) {
  const std::string encoder_name = image_encoder_name(format);
  if (encoder_name.empty())
    throw UsageError(name, "unknown image format '" + format + "' (png, jpg, webp, bmp, tiff)");
  ImageEncoder encoder(encoder_name, quality, 1, name);
  encoder.send(frame);
  encoder.flush();
  std::string bytes;
  if (!encoder.receive(bytes))
    throw Error(name, "the encoder produced no image", ExitCode::kProcessingFailed, "save");
  return bytes;
}

void write_image(const fs::path& path, const Frame& frame, const std::string& format, int quality) {
  const std::string bytes = encode_image(frame, format.empty() ? path.extension().string() : format,
                                         quality, path.string());
  // Written under a temporary name so the final path never holds a partial image.
  const fs::path temporary = temporary_sibling(path);
  try {
    write_file(temporary, bytes);
  } catch (...) {
    std::error_code ec;
    fs::remove(temporary, ec);
    throw;
  }
  std::error_code ec;
  fs::rename(temporary, path, ec);
  if (ec) {
    fs::remove(temporary, ec);
    throw Error(path.string(), "cannot write the image: " + ec.message(),
                ExitCode::kProcessingFailed, "save");
  }
}

}  // namespace upframe
