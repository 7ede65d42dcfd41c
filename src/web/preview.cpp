#include "upframe/web/preview.hpp"

#include <cmath>

#include "upframe/error.hpp"
#include "upframe/media/decoder.hpp"
#include "upframe/media/image_io.hpp"
#include "upframe/upscale/factory.hpp"
#include "upframe/web/roots.hpp"

namespace upframe::web {

namespace fs = std::filesystem;

namespace {

// Frame `request.frame` (or the first at `request.time`) of the input. Decodes from the
// start: a preview is of one frame of a short clip or a still, and decoding is cheap next to
// the upscale that follows; a seek would have to decode from the previous keyframe anyway.
Frame decode_frame(const PreviewRequest& request) {
  DecoderOptions options;
  options.luma_frames = true;  // what the job's upscaler reads
  VideoDecoder decoder(request.input, options);
  const VideoInfo& info = decoder.info();
  const double seconds_per_tick = av_q2d(info.time_base);
  int64_t index = 0;
  std::optional<Frame> last;
  while (std::optional<Frame> frame = decoder.next()) {
    const bool wanted = request.time >= 0
                            ? double(frame->pts()) * seconds_per_tick >= request.time - 1e-6
                            : index == request.frame;
    if (wanted) return *frame;
    last = std::move(frame);
    ++index;
  }
  if (request.time >= 0 && last) return *last;  // past the last frame's start: the last one
  throw RequestError(400, request.input.string() + ": frame " + std::to_string(request.frame) +
                              " is past the end (" + std::to_string(index) + " frames)");
}

}  // namespace

std::string PreviewCache::key(const PreviewRequest& r) const {
  std::error_code ec;
  const auto size = fs::file_size(r.input, ec);
  const auto mtime = fs::last_write_time(r.input, ec).time_since_epoch().count();
  const Settings& s = r.settings;
  // Appended piece by piece: GCC 12 warns (-Wrestrict, a false positive) on "t" + string.
  std::string key = r.input.string();
  for (const std::string& part :
       {std::to_string(size), std::to_string(mtime),
        r.time >= 0 ? std::to_string(r.time) : std::to_string(r.frame),
        std::string(r.time >= 0 ? "time" : "frame"),
        r.original ? std::string("original")
                   : s.model + "|" + std::to_string(s.scale) + "|" + s.device + "|" + s.precision +
                         "|" + std::to_string(s.tile)})
    key += "|" + part;
  return key;
}

std::string PreviewCache::png(const PreviewRequest& request) {
  const std::string cache_key = key(request);
  {
    std::lock_guard lock(cache_mutex_);
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->first != cache_key) continue;
      entries_.splice(entries_.begin(), entries_, it);
      return entries_.front().second;
    }
  }
  std::string bytes;
  {
    std::lock_guard run(run_mutex_);
    Frame frame = decode_frame(request);
    if (!request.original) {
      std::unique_ptr<Upscaler> upscaler = make_upscaler(upscaler_options(request.settings));
      upscaler->prepare(1);
      frame = upscaler->create_worker()->upscale(frame);
    }
    bytes = encode_image(frame, "png", 95, request.input.string());
  }
  std::lock_guard lock(cache_mutex_);
  entries_.emplace_front(cache_key, bytes);
  while (entries_.size() > capacity_) entries_.pop_back();
  return bytes;
}

}  // namespace upframe::web
