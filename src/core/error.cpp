#include "upframe/error.hpp"

namespace upframe {

namespace {
std::string compose(const std::string& file, const std::string& problem, const std::string& stage,
                    int64_t frame_index) {
  std::string text;
  if (!file.empty()) text += file + ": ";
  text += problem;
  if (!stage.empty() || frame_index >= 0) {
    text += " (";
    if (!stage.empty()) text += "stage " + stage;
    if (frame_index >= 0)
      text += (stage.empty() ? "" : ", ") + std::string("frame ") + std::to_string(frame_index);
    text += ")";
  }
  return text;
}
}  // namespace

Error::Error(std::string file, std::string problem, ExitCode code, std::string stage,
             int64_t frame_index)
    : std::runtime_error(compose(file, problem, stage, frame_index)),
      file_(std::move(file)),
      problem_(std::move(problem)),
      stage_(std::move(stage)),
      frame_index_(frame_index),
      code_(code) {}

}  // namespace upframe
