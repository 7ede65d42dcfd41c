#include "upframe/log.hpp"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstring>
#include <string>

extern "C" {
#include <libavutil/log.h>
}

namespace upframe {

namespace {

// libav's messages reach the console as "libav h264: text": the context's name without its
// address, and never at error level, since the one error line of a failed run is upframe's
// own (which names the file and what went wrong). A decoder's complaints about damaged data
// go to debug: the decoder reports each damaged frame itself (src/media/decoder.cpp), and
// libav's per-macroblock lines would repeat it many times over.
void libav_to_spdlog(void* avcl, int level, const char* fmt, va_list args) {
  if (level > av_log_get_level()) return;
  char line[1024];
  std::vsnprintf(line, sizeof line, fmt, args);
  size_t n = std::strlen(line);
  while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
  if (n == 0) return;
  const AVClass* av_class = avcl ? *static_cast<const AVClass* const*>(avcl) : nullptr;
  std::string source = "libav";
  AVClassCategory category = AV_CLASS_CATEGORY_NA;
  if (av_class) {
    // A codec context without a codec (a demuxer's parser) is named "NULL".
    if (const char* name = av_class->item_name(avcl); name && std::strcmp(name, "NULL") != 0)
      source += std::string(" ") + name;
    category = av_class->get_category ? av_class->get_category(avcl) : av_class->category;
  }
  // swscale's warnings are about how libav names formats ("deprecated pixel format used"),
  // nothing a user can act on.
  const bool quiet_source =
      category == AV_CLASS_CATEGORY_DECODER || category == AV_CLASS_CATEGORY_SWSCALER;
  if (level <= AV_LOG_WARNING && !quiet_source)
    spdlog::warn("{}: {}", source, line);
  else
    spdlog::debug("{}: {}", source, line);
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
