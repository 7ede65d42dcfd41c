// Fuzzes container and codec input: upframe::VideoDecoder over arbitrary bytes (written to a
// file in /dev/shm, as the decoder reads paths), decoding at most kMaxFrames frames. Every
// bad input must come out as an upframe::Error.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_input.hpp"
#include "upframe/error.hpp"
#include "upframe/media/decoder.hpp"

namespace {
constexpr int kMaxFrames = 8;  // keeps each input fast; the first frames hold most headers
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  upframe::fuzz::quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto path = upframe::fuzz::scratch_file(".media");
  upframe::fuzz::write_file(path, std::string_view(reinterpret_cast<const char*>(data), size));
  try {
    upframe::DecoderOptions options;
    options.threads = 1;  // deterministic, and libFuzzer runs one input at a time
    upframe::VideoDecoder decoder(path, options);
    const upframe::VideoInfo& info = decoder.info();
    if (info.width <= 0 || info.height <= 0) __builtin_trap();  // the constructor promises a size
    int frames = 0;
    while (frames < kMaxFrames && decoder.next()) ++frames;
    if (upframe::fuzz::verbose())
      std::fprintf(stderr, "decoded: %s %s %dx%d, %d frames\n", info.container.c_str(),
                   info.codec.c_str(), info.width, info.height, frames);
  } catch (const upframe::Error& e) {
    // The expected outcome for a bad input.
    if (upframe::fuzz::verbose()) std::fprintf(stderr, "error: %s\n", e.what());
  }
  return 0;
}
