// Logging for the library and its front ends: spdlog, with libav's own messages routed
// through it (warnings and errors only, so encoder banners do not flood the console).
#pragma once

#include <string>

namespace upframe {

enum class LogLevel { kDebug, kInfo, kWarning, kError, kOff };

// Sets spdlog's default logger level and routes av_log() into it.
void set_log_level(LogLevel level);

// One finished message at `level` through the library's logger. For code that cannot include
// spdlog: nvcc (spdlog's consteval format strings do not compile there) and the library parts
// the CUDA-only device-check kit compiles (it supplies its own stderr version of this).
void log_message(LogLevel level, const std::string& message);

}  // namespace upframe
