// Shared by the fuzz targets: scratch files in /dev/shm (the library reads paths), quiet logs.
#pragma once

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

extern "C" {
#include <libavutil/log.h>
}

namespace upframe::fuzz {

// A file per process (libFuzzer's -jobs/-fork run several), on tmpfs when there is one.
inline std::filesystem::path scratch_file(const std::string& suffix) {
  static const std::filesystem::path dir =
      std::filesystem::exists("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path();
  return dir / ("upframe-fuzz-" + std::to_string(getpid()) + suffix);
}

inline void write_file(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  if (!out) {
    std::perror(path.c_str());
    std::abort();  // a broken harness must not look like a clean run
  }
}

// UPFRAME_FUZZ_VERBOSE=1: each input prints what it gave (to check the seeds by hand).
inline bool verbose() {
  static const bool on = std::getenv("UPFRAME_FUZZ_VERBOSE") != nullptr;
  return on;
}

inline void quiet_logs() {
  spdlog::set_level(spdlog::level::off);
  av_log_set_level(AV_LOG_QUIET);
}

}  // namespace upframe::fuzz
