// Errors carry context: the file, the stage and (where known) the frame index.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace upframe {

// Exit statuses of docs/INTERFACE.md.
enum class ExitCode : int {
  kOk = 0,
  kProcessingFailed = 1,
  kUsage = 2,
  kBatchHadFailures = 3,
  kInterruptedSigint = 130,
  kInterruptedSigterm = 143,
};

class Error : public std::runtime_error {
 public:
  // `file` is the path the problem is about (may be empty); `problem` says what is wrong.
  Error(std::string file, std::string problem, ExitCode code = ExitCode::kProcessingFailed,
        std::string stage = {}, int64_t frame_index = -1);

  const std::string& file() const { return file_; }
  const std::string& problem() const { return problem_; }
  const std::string& stage() const { return stage_; }
  int64_t frame_index() const { return frame_index_; }
  ExitCode code() const { return code_; }

 private:
  std::string file_;
  std::string problem_;
  std::string stage_;
  int64_t frame_index_;
  ExitCode code_;
};

// A usage or configuration problem (bad flag, value or config key): exit status 2.
class UsageError : public Error {
 public:
  UsageError(std::string file, std::string problem)
      : Error(std::move(file), std::move(problem), ExitCode::kUsage) {}
};

// Thrown by the pipeline when a stop was requested (SIGINT/SIGTERM).
class Interrupted : public Error {
 public:
  explicit Interrupted(ExitCode code) : Error({}, "interrupted", code) {}
};

// The text of an libav error code.
std::string av_error_string(int errnum);

}  // namespace upframe
