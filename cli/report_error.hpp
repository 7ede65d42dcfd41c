// How every upframe command ends on an error: "upframe: interrupted" for SIGINT/SIGTERM, else
// the error line `upframe: error: FILE: problem` (docs/INTERFACE.md), and the exit status.
#pragma once

#include <string>

#include "upframe/error.hpp"

namespace upframe::cli {

// Prints the line for `error` to stderr; returns its exit status.
int report_error(const Error& error);

// Prints `upframe: error: TEXT` to stderr.
void print_error(const std::string& text);

}  // namespace upframe::cli
