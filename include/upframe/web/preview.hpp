// Before/after preview of one frame: decode frame N of a video (or the image), upscale it
// now with the job's model and scale, and give both as PNG. Results are cached, so moving
// back to a frame already seen answers at once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <list>
#include <mutex>
#include <string>

#include "upframe/config.hpp"

namespace upframe::web {

struct PreviewRequest {
  std::filesystem::path input;  // resolved by Roots
  int64_t frame = 0;            // index from 0; used when time < 0
  double time = -1;             // seconds: the first frame shown at or after it
  bool original = false;        // the decoded frame itself, not upscaled
  Settings settings;            // model, scale, device, precision, tile
};

class PreviewCache {
 public:
  explicit PreviewCache(size_t capacity = 32) : capacity_(capacity) {}
  // The PNG bytes. Throws upframe::Error for an unreadable input or model, RequestError 400
  // for a frame past the end. Previews run one at a time (each uses every core).
  std::string png(const PreviewRequest& request);

 private:
  std::string key(const PreviewRequest& request) const;
  std::mutex run_mutex_;
  std::mutex cache_mutex_;
  size_t capacity_;
  std::list<std::pair<std::string, std::string>> entries_;  // most recent first
};

}  // namespace upframe::web
