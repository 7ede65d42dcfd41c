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

spdlog::level::level_enum spdlog_level(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return spdlog::level::debug;
    case LogLevel::kInfo:
      return spdlog::level::info;
    case LogLevel::kWarning:
      return spdlog::level::warn;
    case LogLevel::kError:
      return spdlog::level::err;
    case LogLevel::kOff:
      break;
  }
  return spdlog::level::off;
}

}  // namespace

void set_log_level(LogLevel level) {
  spdlog::set_level(spdlog_level(level));
  switch (level) {
    case LogLevel::kDebug:
      av_log_set_level(AV_LOG_VERBOSE);
      break;
    case LogLevel::kInfo:
    case LogLevel::kWarning:
      av_log_set_level(AV_LOG_WARNING);
      break;
    case LogLevel::kError:
      av_log_set_level(AV_LOG_ERROR);
      break;
    case LogLevel::kOff:
      av_log_set_level(AV_LOG_QUIET);
      break;
  }
  av_log_set_callback(libav_to_spdlog);
}

void log_message(LogLevel level, const std::string& message) {
  if (level != LogLevel::kOff) spdlog::log(spdlog_level(level), "{}", message);
}

}  // namespace upframe
