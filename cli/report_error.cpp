#include "report_error.hpp"

#include <cstdio>

namespace upframe::cli {

void print_error(const std::string& text) {
  std::fprintf(stderr, "upframe: error: %s\n", text.c_str());
}

int report_error(const Error& error) {
  if (error.code() == ExitCode::kInterruptedSigint || error.code() == ExitCode::kInterruptedSigterm)
    std::fprintf(stderr, "upframe: interrupted\n");
  else
    print_error(error.what());
  return int(error.code());
}

}  // namespace upframe::cli
