#include "upframe/log.hpp"

#include <spdlog/spdlog.h>

#include <cstring>

extern "C" {
#include <libavutil/log.h>
}

namespace upframe {

namespace {

void libav_to_spdlog(void* avcl, int level, const char* fmt, va_list args) {
  if (level > av_log_get_level()) return;
  char line[1024];
  int print_prefix = 1;
  av_log_format_line2(avcl, level, fmt, args, line, sizeof line, &print_prefix);
  size_t n = std::strlen(line);
  while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
  if (n == 0) return;
  if (level <= AV_LOG_ERROR)
    spdlog::error("libav: {}", line);
  else if (level <= AV_LOG_WARNING)
    spdlog::warn("libav: {}", line);
  else
    spdlog::debug("libav: {}", line);
}

}  // namespace

void set_log_level(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      spdlog::set_level(spdlog::level::debug);
      av_log_set_level(AV_LOG_VERBOSE);
      break;
    case LogLevel::kInfo:
    case LogLevel::kWarning:
      spdlog::set_level(level == LogLevel::kInfo ? spdlog::level::info : spdlog::level::warn);
      av_log_set_level(AV_LOG_WARNING);
      break;
    case LogLevel::kError:
      spdlog::set_level(spdlog::level::err);
      av_log_set_level(AV_LOG_ERROR);
      break;
    case LogLevel::kOff:
      spdlog::set_level(spdlog::level::off);
      av_log_set_level(AV_LOG_QUIET);
      break;
  }
  av_log_set_callback(libav_to_spdlog);
}

void log_message(LogLevel level, const std::string& message) {
  switch (level) {
    case LogLevel::kDebug:
      spdlog::debug("{}", message);
      break;
    case LogLevel::kInfo:
      spdlog::info("{}", message);
      break;
    case LogLevel::kWarning:
      spdlog::warn("{}", message);
      break;
    case LogLevel::kError:
      spdlog::error("{}", message);
      break;
    case LogLevel::kOff:
      break;
  }
}

}  // namespace upframe
