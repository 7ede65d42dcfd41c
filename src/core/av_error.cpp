// av_error_string() (upframe/error.hpp), apart from error.cpp so the CUDA-only device-check kit
// compiles Error without FFmpeg.
extern "C" {
#include <libavutil/error.h>
}

#include "upframe/error.hpp"

namespace upframe {

std::string av_error_string(int errnum) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(errnum, buf, sizeof(buf));
  return buf;
}

}  // namespace upframe
