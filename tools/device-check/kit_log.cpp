// The kit's upframe::log_message (the library's is spdlog's, which the GPU machine lacks).
#include <cstdio>
#include <cstdlib>

#include "upframe/log.hpp"

namespace upframe {

void log_message(LogLevel level, const std::string& message) {
  // Debug lines (per-layer algorithm choices) only when asked: UPFRAME_KIT_DEBUG=1.
  static const bool debug = std::getenv("UPFRAME_KIT_DEBUG") != nullptr;
  if (level == LogLevel::kOff || (level == LogLevel::kDebug && !debug)) return;
  static const char* names[] = {"debug", "info", "warning", "error"};
  std::fprintf(stderr, "upframe: %s: %s\n", names[int(level)], message.c_str());
}

}  // namespace upframe
