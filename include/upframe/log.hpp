// Logging for the library and its front ends: spdlog, with libav's own messages routed
// through it (warnings and errors only, so encoder banners do not flood the console).
#pragma once

namespace upframe {

enum class LogLevel { kDebug, kInfo, kWarning, kError, kOff };

// Sets spdlog's default logger level and routes av_log() into it.
void set_log_level(LogLevel level);

}  // namespace upframe
