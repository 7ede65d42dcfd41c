// Where a job's output goes (docs/INTERFACE.md, "Output path") and the checks made before any
// work starts, so bad paths fail fast and nothing is written.
#include <unistd.h>

#include <algorithm>

#include "pipeline/output_checks.hpp"
#include "upframe/error.hpp"
#include "upframe/media/frame_sink.hpp"
#include "upframe/media/image_io.hpp"
#include "upframe/pipeline/job.hpp"

namespace upframe {

namespace fs = std::filesystem;

namespace {
std::string lower_extension(const fs::path& path) {
  std::string ext = path.extension().string();
  if (!ext.empty()) ext.erase(0, 1);
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext;
}

std::string image_format_of(const fs::path& path) {
  std::string ext = lower_extension(path);
  return ext == "jpeg" ? "jpg" : ext == "tif" ? "tiff" : ext;
}
}  // namespace

bool is_image_path(const fs::path& path) {
  static const char* kImageExtensions[] = {"png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff"};
  std::string ext = lower_extension(path);
  return std::any_of(std::begin(kImageExtensions), std::end(kImageExtensions),
                     [&](const char* e) { return ext == e; });
}

OutputPlan plan_output(const Settings& settings, int scale) {
  const fs::path& input = settings.input;
  const std::string suffix = "_x" + std::to_string(scale);
  OutputPlan plan;
  // An animated PNG or WebP is a clip: it goes through the video pipeline.
  if (is_image_path(input) && !is_animated_image(input)) {
    plan.kind = OutputKind::kImage;
    fs::path out = settings.output;
    std::string format = settings.format;
    if (out.empty() || fs::is_directory(out) || out.string().ends_with('/')) {
      fs::path folder = out.empty() ? input.parent_path() : out;
      std::string ext = format.empty() ? input.extension().string() : "." + format;
      out = folder / (input.stem().string() + suffix + ext);
    }
    plan.path = out;
    plan.format = format.empty() ? image_format_of(out) : format;
    return plan;
  }
  const fs::path& out = settings.output;
  if (out == "/dev/null") {
    plan.kind = OutputKind::kNull;
    plan.path = out;
    return plan;
  }
  bool frames = !settings.format.empty() ||
                (!out.empty() && (out.string().ends_with('/') || fs::is_directory(out)));
  if (frames) {
    plan.kind = OutputKind::kFramesFolder;
    plan.format = settings.format.empty() ? "png" : settings.format;
    plan.path = out.empty() ? input.parent_path() / (input.stem().string() + suffix) : out;
    // "frames/" and "frames" name the same folder.
    if (plan.path.filename().empty()) plan.path = plan.path.parent_path();
  } else {
    plan.kind = OutputKind::kVideo;
    plan.path = out.empty() ? input.parent_path() /
                                  (input.stem().string() + suffix + input.extension().string())
                            : out;
    plan.format = animation_format_of(plan.path);
    if (!plan.format.empty()) plan.kind = OutputKind::kAnimation;
  }
  return plan;
}

namespace pipeline {

void check_input(const fs::path& input) {
  std::error_code ec;
  if (input.empty()) throw UsageError({}, "no input given");
  if (!fs::exists(input, ec)) throw Error(input.string(), "no such file");
  if (fs::is_directory(input, ec))
    throw UsageError(input.string(), "is a folder (run_batch processes folders)");
  if (access(input.c_str(), R_OK) != 0) throw Error(input.string(), "not readable");
}

void check_output(const OutputPlan& plan, const fs::path& input, bool overwrite) {
  std::error_code ec;
  const fs::path& out = plan.path;
  if (plan.kind == OutputKind::kNull) return;
  if (fs::exists(out, ec) && fs::equivalent(out, input, ec))
    throw UsageError(out.string(), "output is the input file");
  if (fs::weakly_canonical(out, ec) == fs::weakly_canonical(input, ec))
    throw UsageError(out.string(), "output is the input file");
  if (plan.kind == OutputKind::kFramesFolder) {
    if (fs::exists(out) && !fs::is_directory(out))
      throw UsageError(out.string(), "exists and is not a folder (frames output needs a folder)");
    if (fs::is_directory(out) && !fs::is_empty(out) && !overwrite)
      throw UsageError(out.string(), "folder exists and is not empty (use -y to overwrite)");
  } else if (fs::exists(out)) {
    if (fs::is_directory(out)) throw UsageError(out.string(), "is a folder");
    if (!overwrite) throw UsageError(out.string(), "output exists (use -y to overwrite)");
  }
  fs::path folder = out.parent_path();
  if (folder.empty()) folder = ".";
  if (!fs::is_directory(folder, ec))
    throw Error(out.string(), "output folder " + folder.string() + " does not exist");
  if (access(folder.c_str(), W_OK) != 0)
    throw Error(out.string(), "output folder " + folder.string() + " is not writable");
}

}  // namespace pipeline
}  // namespace upframe
