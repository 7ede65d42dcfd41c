#include "report_error.hpp"

#include <cstdio>

namespace upframe::cli {

int report_error(const Error& error) {
  if (error.code() == ExitCode::kInterruptedSigint || error.code() == ExitCode::kInterruptedSigterm)
    std::fprintf(stderr, "upframe: interrupted\n");
  else
    std::fprintf(stderr, "upframe: error: %s\n", error.what());
  return int(error.code());
}

}  // namespace upframe::cli
