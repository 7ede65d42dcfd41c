#include "upframe/pipeline/batch.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>

#include "pipeline/output_checks.hpp"
#include "pipeline/stage_clock.hpp"
#include "pipeline/video_pipeline.hpp"
#include "upframe/error.hpp"
#include "upframe/media/frame_sink.hpp"

namespace upframe {

namespace fs = std::filesystem;

namespace {

std::string lower_extension(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext;
}

// Where one input of the batch goes: same relative path, video container kept unless it
// cannot hold the encoder's codec, image format from --format.
fs::path output_for(const Settings& settings, const fs::path& relative, bool image) {
  fs::path out = settings.output / relative;
  if (image) {
    if (!settings.format.empty()) out.replace_extension("." + settings.format);
    return out;
  }
  if (!animation_format_of(out).empty()) return out;  // gif, apng, webp: kept as they are
  std::string encoder = resolve_encoder(settings.encoder, 8, out);
  if (!container_accepts_encoder(out, encoder)) {
    spdlog::warn("{}: the {} container cannot hold {} output: writing .mkv", relative.string(),
                 out.extension().string(), encoder);
    out.replace_extension(".mkv");
  }
  return out;
}

nlohmann::json totals_json(const BatchResult& r) {
  int64_t frames = 0, unique = 0, duplicates = 0;
  double extraction = 0, detection = 0, upscale = 0, save = 0;
  for (const BatchFileResult& f : r.files) {
    if (!f.ok) continue;
    frames += f.stats.total_frames;
    unique += f.stats.unique_frames;
    duplicates += f.stats.duplicate_frames;
    extraction += f.stats.extraction_time;
    detection += f.stats.detection_time;
    upscale += f.stats.upscale_time;
    save += f.stats.save_time;
  }
  int files = int(r.files.size());
  return {{"files", files},
          {"succeeded", files - r.failed()},
          {"failed", r.failed()},
          {"skipped",
           std::count_if(r.files.begin(), r.files.end(), [](const auto& f) { return f.skipped; })},
          {"total_frames", frames},
          {"unique_frames", unique},
          {"duplicate_frames", duplicates},
          {"duplicate_percentage", frames ? 100.0 * double(duplicates) / double(frames) : 0.0},
          {"extraction_time", extraction},
          {"detection_time", detection},
          {"upscale_time", upscale},
          {"save_time", save},
          {"total_time", r.total_time},
          {"fps", r.total_time > 0 ? double(frames) / r.total_time : 0.0}};
}

}  // namespace

bool is_video_path(const fs::path& path) {
  static const char* kVideoExtensions[] = {".mp4",  ".mkv",  ".mov", ".avi", ".webm", ".m4v",
                                           ".ts",   ".m2ts", ".mts", ".flv", ".wmv",  ".mpg",
                                           ".mpeg", ".3gp",  ".ogv", ".y4m", ".gif",  ".apng"};
  std::string ext = lower_extension(path);
  return std::any_of(std::begin(kVideoExtensions), std::end(kVideoExtensions),
                     [&](const char* e) { return ext == e; });
}

int BatchResult::failed() const {
  return int(std::count_if(files.begin(), files.end(), [](const auto& f) { return !f.ok; }));
}

nlohmann::json BatchResult::to_json() const {
  nlohmann::json list = nlohmann::json::array();
  for (const BatchFileResult& f : files) {
    list.push_back({{"input", f.input.string()},
                    {"output", f.output.string()},
                    {"status", f.skipped ? "skipped"
                               : f.ok    ? "ok"
                                         : "failed"},
                    {"error", f.ok ? nlohmann::json() : nlohmann::json(f.error)},
                    {"stats", f.ok && !f.skipped ? f.stats.to_json() : nlohmann::json()}});
  }
  return {{"files", list}, {"totals", totals_json(*this)}};
}

std::vector<BatchItem> plan_batch(const Settings& settings, int scale) {
  const fs::path& folder = settings.input;
  Settings resolved = settings;
  if (resolved.output.empty()) {
    fs::path clean = folder.filename().empty() ? folder.parent_path() : folder;
    resolved.output = clean.string() + "_x" + std::to_string(scale);
  }
  std::error_code ec;
  fs::path out_canonical = fs::weakly_canonical(resolved.output, ec);
  if (fs::exists(resolved.output) && !fs::is_directory(resolved.output))
    throw UsageError(resolved.output.string(),
                     "exists and is not a folder (a folder input needs a folder output)");

  std::vector<fs::path> inputs;
  auto consider = [&](const fs::directory_entry& e) {
    if (e.is_regular_file() && (is_image_path(e.path()) || is_video_path(e.path())))
      inputs.push_back(e.path());
  };
  if (settings.recursive) {
    for (auto it = fs::recursive_directory_iterator(folder);
         it != fs::recursive_directory_iterator(); ++it) {
      if (it->is_directory() && fs::weakly_canonical(it->path(), ec) == out_canonical) {
        it.disable_recursion_pending();  // our own output folder inside the input folder
        continue;
      }
      consider(*it);
    }
  } else {
    for (const auto& e : fs::directory_iterator(folder)) consider(e);
  }
  std::sort(inputs.begin(), inputs.end());

  std::vector<BatchItem> items;
  std::map<fs::path, fs::path> writer_of;
  for (const fs::path& in : inputs) {
    fs::path out = output_for(resolved, fs::relative(in, folder), is_image_path(in));
    auto [it, fresh] = writer_of.emplace(out, in);
    if (!fresh)
      throw UsageError(out.string(), "both " + it->second.string() + " and " + in.string() +
                                         " would write this output");
    items.push_back({in, out});
  }
  return items;
}

BatchResult run_batch(const Settings& settings, const ProgressCallback& progress,
                      const StopFlag* stop) {
  auto start = pipeline::Clock::now();
  // The settings, the model and the scale are checked once, before any work.
  validate_settings(settings);
  const int scale = pipeline::create_upscaler(settings)->scale();
  std::vector<BatchItem> items = plan_batch(settings, scale);
  if (items.empty()) throw Error(settings.input.string(), "no image or video files in this folder");
  spdlog::info("batch: {} file(s) from {}", items.size(), settings.input.string());

  BatchResult result;
  auto write_stats = [&] {
    result.total_time = pipeline::seconds_since(start);
    if (!settings.stats.empty()) pipeline::write_stats_file(settings.stats, result.to_json());
  };
  for (const BatchItem& item : items) {
    BatchFileResult file;
    file.input = item.input;
    file.output = item.output;
    Settings one = settings;
    one.input = item.input;
    one.output = item.output;
    one.stats.clear();
    if (!is_image_path(item.input)) one.format.clear();  // --format is for images here
    try {
      // Between files too: an image job has no frame loop that would see the stop.
      pipeline::throw_if_stopped(stop);
      fs::create_directories(item.output.parent_path());
      spdlog::info("batch: {} -> {}", item.input.string(), item.output.string());
      // With --resume, an output a finished job recorded as its own is skipped (run_job says
      // so); any other existing output is an error as without --resume.
      file.stats = run_job(one, progress, stop);
      file.ok = true;
      file.skipped = file.stats.already_complete;
    } catch (const Interrupted&) {
      file.error = "interrupted";
      result.files.push_back(file);
      write_stats();
      throw;
    } catch (const std::exception& e) {
      file.error = e.what();
      spdlog::error("batch: {}", e.what());
    }
    result.files.push_back(std::move(file));
  }
  write_stats();
  return result;
}

}  // namespace upframe
