// Distributed jobs (docs/SCALE.md): the plan, one segment, the join and the status (the Slurm
// and Kubernetes writers are in cluster_schedulers.cpp). A segment is made by
// run_video_range(), the code that makes each segment of a resumable job, and joined by
// join_video_segments(), so a distributed job's output is that of one process cutting at the
// same frames.
//
// The job folder holds, per segment k (file f):
//   f_NNNN/seg_KKKKKK.upseg    the finished segment (present only when whole)
//   f_NNNN/seg_KKKKKK.json     its record: frames, options hash, stats (written after the .upseg)
//   f_NNNN/seg_KKKKKK.lock     the worker's lock (fcntl; a killed worker's lock goes with it)
//   f_NNNN/seg_KKKKKK.running  the running worker's progress (host, pid, frames done, fps)
#include "upframe/pipeline/cluster.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <thread>

#include "pipeline/cluster_internal.hpp"
#include "pipeline/file_lock.hpp"
#include "pipeline/job_internal.hpp"
#include "pipeline/output_checks.hpp"
#include "pipeline/resume.hpp"
#include "pipeline/stage_clock.hpp"
#include "upframe/error.hpp"
#include "upframe/media/decoder.hpp"
#include "upframe/media/frame_sink.hpp"
#include "upframe/pipeline/batch.hpp"
#include "upframe/upscale/factory.hpp"

namespace upframe::cluster {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kManifestKind = "upframe distributed job";

// Settings that do not change what a worker makes: not carried to the workers.
const std::set<std::string> kLocalSettings = {"input",  "output",        "stats",
                                              "resume", "progress_json", "quiet"};

std::string host_name() {
  char name[256] = {};
  gethostname(name, sizeof name - 1);
  return name;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

json read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return nullptr;
  return json::parse(in, nullptr, false);
}

// The settings a worker runs with: the plan's, for one of its files.
Settings settings_of(const json& m, const json& file, const fs::path& manifest) {
  Settings s;
  for (auto it = m["settings"].begin(); it != m["settings"].end(); ++it)
    set_setting(s, it.key(), it.value().get<std::string>(), manifest.string());
  s.input = file["input"].get<std::string>();
  s.output = file["output"].get<std::string>();
  return s;
}

std::string segment_stem(int64_t index) {
  char name[32];
  std::snprintf(name, sizeof name, "seg_%06lld", static_cast<long long>(index));
  return name;
}

// A segment's files in the job folder.
struct SegmentFiles {
  fs::path upseg, record, lock, running;
};
SegmentFiles segment_files(const json& segment) {
  const fs::path upseg = segment["path"].get<std::string>();
  const fs::path base = upseg.parent_path() / upseg.stem();
  auto with = [&](const char* ext) {
    fs::path p = base;
    p += ext;
    return p;
  };
  return {upseg, with(".json"), with(".lock"), with(".running")};
}

// The file's resolved options, as a worker on this machine resolves them, and the output plan.
struct Resolved {
  std::unique_ptr<Upscaler> upscaler;
  OutputPlan plan;
  json options;
};
void require_video_output(const OutputPlan& plan) {
  if (plan.kind != OutputKind::kVideo)
    throw UsageError(plan.path.string(),
                     "a distributed job writes video files: frames folders, images, animations "
                     "and -o /dev/null are not supported");
}

Resolved resolve(const Settings& s, const VideoInfo& info) {
  Resolved r;
  r.upscaler = pipeline::create_upscaler(s);
  r.plan = plan_output(s, r.upscaler->scale());
  require_video_output(r.plan);
  const std::string encoder = resolve_encoder(s.encoder, info.bit_depth, r.plan.path);
  if (!container_accepts_encoder(r.plan.path, encoder))
    throw UsageError(r.plan.path.string(), container_refusal(r.plan.path, encoder));
  r.options = output_options(s, *r.upscaler, r.plan, encoder);
  return r;
}

// Segment starts (pts) for one file: keyframes nearest to evenly spaced targets.
std::vector<int64_t> segment_starts(const VideoPacketIndex& index, const PlanOptions& options) {
  const std::vector<int64_t>& frames = index.pts;
  const std::vector<int64_t>& keys = index.keyframe_pts;
  std::vector<int64_t> targets;  // frame indices
  const int64_t total = int64_t(frames.size());
  if (options.segments > 0) {
    for (int k = 1; k < options.segments; ++k) targets.push_back(k * total / options.segments);
  } else {
    const double tb = av_q2d(index.time_base);
    for (int k = 1;; ++k) {
      const int64_t pts = frames.front() + std::llround(k * options.segment_seconds / tb);
      if (pts > frames.back()) break;
      targets.push_back(std::lower_bound(frames.begin(), frames.end(), pts) - frames.begin());
    }
  }
  std::vector<int64_t> starts;
  for (int64_t target : targets) {
    // The keyframe whose frame index is nearest the target.
    int64_t best = -1, best_distance = total + 1;
    for (int64_t key : keys) {
      const int64_t at = std::lower_bound(frames.begin(), frames.end(), key) - frames.begin();
      if (at <= 0) continue;  // the first segment starts at the first frame anyway
      if (std::llabs(at - target) < best_distance)
        best = key, best_distance = std::llabs(at - target);
    }
    if (best >= 0 && (starts.empty() || best > starts.back())) starts.push_back(best);
  }
  return starts;
}

// Empty when the segment is finished and matches the plan; else why not. `read_it`: its file
// is read through to check its checksum too (a damaged segment is made again or refused).
std::string segment_problem(const json& segment, const json& file, bool read_it = true) {
  const SegmentFiles files = segment_files(segment);
  std::error_code ec;
  if (!fs::exists(files.upseg, ec)) return "missing";
  const json record = read_json(files.record);
  if (record.is_discarded() || !record.is_object()) return "has no record (unfinished)";
  for (const char* key : {"frames", "unique", "duplicates", "start_duplicate_lost"})
    if (!record.contains(key) || !record[key].is_number_integer())
      return "has a damaged record (" + files.record.filename().string() + ": " + key + ")";
  if (!record.contains("seconds") || !record["seconds"].is_number())
    return "has a damaged record (" + files.record.filename().string() + ": seconds)";
  if (const std::string problem = read_it ? segment_file_problem(files.upseg) : std::string();
      !problem.empty())
    return problem;
  if (!record.contains("options_hash") || record["options_hash"] != file["options_hash"])
    return "made with other settings";
  if (!record.contains("input") || record["input"] != file["identity"])
    return "made from another input";
  const int64_t frames = record["frames"].get<int64_t>();
  const int64_t planned = segment["frames"].get<int64_t>();
  if (frames != planned)
    return "holds " + std::to_string(frames) + " frames, the plan " + std::to_string(planned);
  return {};
}

// Whether a one-process run without a segment start here would find the segment's first frame
// a duplicate: the duplicate the start costs (that frame is upscaled and encoded as unique).
// Estimated by running the detector from the keyframe before the start: exact unless a run of
// duplicates reaches further back than that keyframe.
bool start_costs_duplicate(const Settings& s, const json& segment) {
  DecoderOptions o;
  o.luma_frames = true;
  o.start_pts = segment["lookback_pts"].get<int64_t>();
  o.end_pts =
      segment["end_pts"].is_null() ? std::optional<int64_t>() : segment["end_pts"].get<int64_t>();
  const int64_t start = segment["start_pts"].get<int64_t>();
  VideoDecoder decoder(s.input, o);
  // Smaller than the hash: the job detects no duplicates (run_video_range), so none is lost.
  if (decoder.info().width < s.hash_size || decoder.info().height < s.hash_size) return false;
  dedup::DuplicateDetector detector(detector_options(s, decoder.info()));
  for (int64_t index = 0;; ++index) {
    std::optional<Frame> frame = decoder.next();
    if (!frame) return false;
    const bool duplicate = detector.classify(index, *frame).duplicate;
    if (frame->pts() >= start) return duplicate;
  }
}

}  // namespace

void write_atomically(const fs::path& path, const std::string& text) {
  std::string name = ".";
  name += path.filename().string();
  name += '.';
  name += std::to_string(getpid());
  name += ".tmp";
  const fs::path temporary = path.parent_path() / name;
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << text;
    out.close();
    if (!out) throw Error(path.string(), "cannot write the file");
  }
  pipeline::sync_path(temporary);
  std::error_code ec;
  fs::rename(temporary, path, ec);
  if (ec) {
    fs::remove(temporary, ec);
    throw Error(path.string(), "cannot write the file: " + ec.message());
  }
}

namespace {

// A manifest is input, not trust: every field a worker or the join reads is checked before
// use, and every path it writes is derived from the manifest's own folder. A problem is one
// line naming the manifest and the field.
class ManifestCheck {
 public:
  explicit ManifestCheck(const fs::path& manifest) : manifest_(manifest) {}

  [[noreturn]] void fail(const std::string& field, const std::string& problem) const {
    throw UsageError(manifest_.string(), "field " + field + ": " + problem +
                                             " (a damaged or hand-edited manifest: plan the "
                                             "job again)");
  }
  const json& member(const json& object, const std::string& key, const std::string& field) const {
    if (!object.contains(key)) fail(field, "missing");
    return object[key];
  }
  std::string text(const json& object, const std::string& key, const std::string& field) const {
    const json& v = member(object, key, field);
    if (!v.is_string()) fail(field, "must be a string, not " + std::string(v.type_name()));
    return v.get<std::string>();
  }
  int64_t integer(const json& object, const std::string& key, const std::string& field,
                  int64_t min) const {
    const json& v = member(object, key, field);
    if (!v.is_number_integer())
      fail(field, "must be an integer, not " + std::string(v.type_name()));
    const int64_t n = v.get<int64_t>();
    if (n < min) fail(field, "must be at least " + std::to_string(min));
    return n;
  }
  void integer_or_null(const json& object, const std::string& key, const std::string& field) const {
    const json& v = member(object, key, field);
    if (!v.is_null() && !v.is_number_integer())
      fail(field, "must be an integer or null, not " + std::string(v.type_name()));
  }
  const json& of_type(const json& object, const std::string& key, const std::string& field,
                      json::value_t type, const char* what) const {
    const json& v = member(object, key, field);
    if (v.type() != type) fail(field, std::string("must be ") + what + ", not " + v.type_name());
    return v;
  }
  // An absolute path without `.` or `..` steps.
  fs::path clean_path(const json& object, const std::string& key, const std::string& field) const {
    const fs::path p = text(object, key, field);
    if (!p.is_absolute()) fail(field, "must be an absolute path");
    for (const fs::path& part : p)
      if (part == "." || part == "..") fail(field, "must not hold '.' or '..' steps");
    return p;
  }

 private:
  fs::path manifest_;
};

bool is_within(const fs::path& path, const fs::path& folder) {
  auto a = folder.begin(), b = path.begin();
  for (; a != folder.end() && !a->empty(); ++a, ++b)
    if (b == path.end() || *a != *b) return false;
  return true;
}

void check_manifest(const json& m, const fs::path& manifest) {
  const ManifestCheck check(manifest);
  // The job folder is where the manifest is: what a worker writes is derived from it.
  const fs::path job = check.clean_path(m, "job_folder", "job_folder");
  std::error_code ec;
  const fs::path here = fs::weakly_canonical(fs::absolute(manifest).parent_path(), ec);
  if (fs::weakly_canonical(job, ec) != here)
    check.fail("job_folder", "is not the folder that holds the manifest (" + here.string() + ")");
  const json& settings =
      check.of_type(m, "settings", "settings", json::value_t::object, "an object");
  for (auto it = settings.begin(); it != settings.end(); ++it)
    if (!it.value().is_string()) check.fail("settings." + it.key(), "must be a string");
  const json& files = check.of_type(m, "files", "files", json::value_t::array, "a list");
  if (files.empty()) check.fail("files", "must list at least one file");
  const json& segments = check.of_type(m, "segments", "segments", json::value_t::array, "a list");
  int64_t next_segment = 0;
  for (size_t f = 0; f < files.size(); ++f) {
    const std::string at = "files[" + std::to_string(f) + "]";
    const json& file = files[f];
    if (!file.is_object()) check.fail(at, "must be an object");
    const fs::path input = check.clean_path(file, "input", at + ".input");
    const fs::path output = check.clean_path(file, "output", at + ".output");
    if (!is_video_path(output)) check.fail(at + ".output", "is not a video file name");
    if (output == input) check.fail(at + ".output", "is the input");
    if (is_within(output, job)) check.fail(at + ".output", "is inside the job folder");
    check.of_type(file, "identity", at + ".identity", json::value_t::object, "an object");
    check.of_type(file, "options", at + ".options", json::value_t::object, "an object");
    check.text(file, "options_hash", at + ".options_hash");
    check.integer(file, "frames", at + ".frames", 0);
    char folder_name[32];
    std::snprintf(folder_name, sizeof folder_name, "f_%04zu", f);
    if (check.clean_path(file, "folder", at + ".folder") != job / folder_name)
      check.fail(at + ".folder", "must be " + (job / folder_name).string());
    if (check.integer(file, "first_segment", at + ".first_segment", 0) != next_segment)
      check.fail(at + ".first_segment", "must be " + std::to_string(next_segment));
    const int64_t count = check.integer(file, "segments", at + ".segments", 1);
    if (next_segment + count > int64_t(segments.size()))
      check.fail(at + ".segments", "more than the segments listed");
    for (int64_t k = next_segment; k < next_segment + count; ++k) {
      const std::string sat = "segments[" + std::to_string(k) + "]";
      const json& segment = segments[size_t(k)];
      if (!segment.is_object()) check.fail(sat, "must be an object");
      if (check.integer(segment, "index", sat + ".index", 0) != k)
        check.fail(sat + ".index", "must be " + std::to_string(k));
      if (check.integer(segment, "file", sat + ".file", 0) != int64_t(f))
        check.fail(sat + ".file", "must be " + std::to_string(f));
      for (const char* key : {"start_pts", "end_pts", "lookback_pts"})
        check.integer_or_null(segment, key, sat + "." + key);
      check.integer(segment, "first_frame", sat + ".first_frame", 0);
      check.integer(segment, "frames", sat + ".frames", 0);
      // A worker writes only inside the job's folder, under the name the plan gives.
      const fs::path expected = job / folder_name / (segment_stem(k) + ".upseg");
      if (check.clean_path(segment, "path", sat + ".path") != expected)
        check.fail(sat + ".path", "must be " + expected.string() +
                                      " (segments are written only inside the job folder)");
    }
    next_segment += count;
  }
  if (next_segment != int64_t(segments.size()))
    check.fail("segments", "lists " + std::to_string(segments.size()) + ", the files " +
                               std::to_string(next_segment));
}

}  // namespace

json load_manifest(const fs::path& manifest) {
  json m = read_json(manifest);
  if (m.is_null() || m.is_discarded() || !m.is_object() || !m.contains("kind") ||
      m["kind"] != kManifestKind)
    throw UsageError(manifest.string(), "not a readable upframe job manifest");
  if (m.value("version", json()) != kManifestVersion)
    throw UsageError(manifest.string(), "manifest version " + m.value("version", json()).dump() +
                                            ": this upframe reads version " +
                                            std::to_string(kManifestVersion));
  check_manifest(m, manifest);
  return m;
}

std::string shell_quote(const std::string& word) {
  std::string out = "'";
  for (char c : word) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

fs::path this_program() {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path("upframe") : self;
}

fs::path plan_job(const Settings& settings, const PlanOptions& options) {
  if ((options.segments > 0) == (options.segment_seconds > 0))
    throw UsageError({}, "plan: give one of --segments N or --segment-seconds S");
  validate_settings(settings);
  std::error_code ec;
  if (!fs::exists(settings.input, ec))
    throw Error(settings.input.string(), "no such file or folder", ExitCode::kUsage);
  const bool folder = fs::is_directory(settings.input, ec);

  // Every video of the job, with its output.
  std::vector<std::pair<fs::path, fs::path>> items;
  fs::path output_root;  // a folder input's output folder (plan_batch's default)
  if (folder) {
    const int scale = pipeline::create_upscaler(settings)->scale();
    const fs::path clean =
        settings.input.filename().empty() ? settings.input.parent_path() : settings.input;
    output_root = settings.output.empty() ? fs::path(clean.string() + "_x" + std::to_string(scale))
                                          : settings.output;
    for (const BatchItem& item : plan_batch(settings, scale)) {
      if (is_image_path(item.input) && !is_video_path(item.input)) {
        spdlog::info("{}: an image, not planned (run it with plain upframe)", item.input.string());
        continue;
      }
      items.emplace_back(fs::absolute(item.input), fs::absolute(item.output));
    }
    if (items.empty()) throw UsageError(settings.input.string(), "no video to plan in the folder");
  } else {
    pipeline::check_input(settings.input);
    const OutputPlan plan = plan_output(settings, pipeline::create_upscaler(settings)->scale());
    require_video_output(plan);
    items.emplace_back(fs::absolute(settings.input), fs::absolute(plan.path));
  }

  fs::path job = options.job_folder;
  if (job.empty()) {
    fs::path out = fs::absolute(folder ? output_root : items.front().second);
    if (!out.has_filename()) out = out.parent_path();
    job = out;
    job += ".upframe-job";
  }
  job = fs::absolute(job).lexically_normal();
  if (fs::exists(job, ec)) {
    if (!settings.overwrite)
      throw UsageError(job.string(),
                       "a job folder exists here: use -y to plan again (its "
                       "segments are removed), or --job-folder elsewhere");
    fs::remove_all(job, ec);
    if (ec) throw Error(job.string(), "cannot remove the old job folder: " + ec.message());
  }

  json carried = json::object();
  // The settings given (those that differ from the defaults); the workers start from the
  // defaults too.
  const Settings defaults;
  for (const SettingSpec& spec : setting_specs()) {
    const std::string value = get_setting(settings, spec.key);
    if (!kLocalSettings.count(spec.key) && value != get_setting(defaults, spec.key))
      carried[spec.key] = value;
  }

  json files = json::array(), segments = json::array();
  for (size_t f = 0; f < items.size(); ++f) {
    Settings s = settings;
    s.input = items[f].first;
    s.output = items[f].second;
    VideoInfo info = VideoDecoder(s.input).info();
    Resolved r = resolve(s, info);
    // A folder's outputs keep its sub-folders, made here as a batch makes them.
    if (folder) fs::create_directories(r.plan.path.parent_path(), ec);
    pipeline::check_output(r.plan, s.input, s.overwrite);
    const VideoPacketIndex index = index_video_packets(s.input);
    const std::vector<int64_t> starts = segment_starts(index, options);
    char folder_name[32];
    std::snprintf(folder_name, sizeof folder_name, "f_%04zu", f);
    const fs::path file_folder = job / folder_name;
    json file = {{"input", s.input.string()},
                 {"output", r.plan.path.string()},
                 {"identity", pipeline::input_identity(s.input)},
                 {"options", r.options},
                 {"options_hash", pipeline::options_hash(r.options)},
                 {"time_base", {index.time_base.num, index.time_base.den}},
                 {"frames", index.pts.size()},
                 {"folder", file_folder.string()},
                 {"first_segment", segments.size()},
                 {"segments", starts.size() + 1}};
    for (size_t k = 0; k <= starts.size(); ++k) {
      json start = k == 0 ? json() : json(starts[k - 1]);
      json end = k == starts.size() ? json() : json(starts[k]);
      const auto from = k == 0
                            ? index.pts.begin()
                            : std::lower_bound(index.pts.begin(), index.pts.end(), starts[k - 1]);
      const auto to = k == starts.size()
                          ? index.pts.end()
                          : std::lower_bound(index.pts.begin(), index.pts.end(), starts[k]);
      json lookback;  // the keyframe before the start: where the frame before it is decoded from
      if (k > 0) {
        auto key =
            std::lower_bound(index.keyframe_pts.begin(), index.keyframe_pts.end(), starts[k - 1]);
        lookback = key == index.keyframe_pts.begin() ? json(index.pts.front()) : json(*(key - 1));
      }
      const int64_t number = int64_t(segments.size());
      segments.push_back({{"index", number},
                          {"file", f},
                          {"start_pts", start},
                          {"end_pts", end},
                          {"lookback_pts", lookback},
                          {"first_frame", from - index.pts.begin()},
                          {"frames", to - from},
                          {"path", (file_folder / (segment_stem(number) + ".upseg")).string()}});
    }
    const size_t wanted = options.segments > 0 ? size_t(options.segments) : 0;
    if (wanted && starts.size() + 1 < wanted)
      spdlog::info("{}: {} keyframe-aligned segment(s), not {}: the input has too few keyframes",
                   s.input.string(), starts.size() + 1, wanted);
    spdlog::info("{}: {} frames in {} segment(s) -> {}", s.input.string(), index.pts.size(),
                 starts.size() + 1, r.plan.path.string());
    files.push_back(file);
  }

  const json manifest = {{"kind", kManifestKind},      {"version", kManifestVersion},
                         {"job_folder", job.string()}, {"created", int64_t(now_seconds())},
                         {"settings", carried},        {"files", files},
                         {"segments", segments}};
  fs::create_directories(job, ec);
  if (ec) throw Error(job.string(), "cannot create the job folder: " + ec.message());
  for (const json& file : files) fs::create_directories(file["folder"].get<std::string>(), ec);
  fs::create_directories(job / "logs", ec);
  const fs::path path = job / kManifestName;
  write_atomically(path, manifest.dump(2) + "\n");
  return path;
}

std::optional<int64_t> index_from_environment() {
  for (const char* name : {"SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"}) {
    const char* value = std::getenv(name);
    if (!value || !*value) continue;
    char* end = nullptr;
    const long long index = std::strtoll(value, &end, 10);
    if (*end || index < 0)
      throw UsageError({}, std::string(name) + " is '" + value + "', not a segment index");
    return index;
  }
  return std::nullopt;
}

SegmentResult run_segment(const fs::path& manifest_path, int64_t index,
                          const ProgressCallback& progress) {
  const json m = load_manifest(manifest_path);
  const json& segments = m["segments"];
  if (index < 0 || index >= int64_t(segments.size()))
    throw UsageError(manifest_path.string(), "segment index " + std::to_string(index) +
                                                 " is outside 0.." +
                                                 std::to_string(int64_t(segments.size()) - 1));
  const json& segment = segments[size_t(index)];
  const json& file = m["files"][segment["file"].get<size_t>()];
  Settings s = settings_of(m, file, manifest_path);
  const std::string where = "segment " + std::to_string(index);

  if (pipeline::input_identity(s.input) != file["identity"])
    throw UsageError(s.input.string(),
                     "the input changed since the plan (size, time or content): plan again");
  VideoInfo info = VideoDecoder(s.input).info();
  Resolved r = resolve(s, info);
  if (r.options != file["options"])
    throw UsageError(manifest_path.string(),
                     where + ": this worker resolves other settings than the plan (" +
                         pipeline::option_differences(file["options"], r.options) +
                         "): give them explicitly to upframe plan");

  const SegmentFiles files = segment_files(segment);
  // (A killed worker's lock goes with it; see FileLock.)
  pipeline::FileLock lock(files.lock);
  if (!lock.held()) {
    spdlog::info("{}: another worker is running it; leaving it to that one", where);
    return {SegmentOutcome::kTakenByOtherWorker, {}};
  }
  if (segment_problem(segment, file).empty()) {
    spdlog::info("{}: already finished ({})", where, files.upseg.string());
    return {SegmentOutcome::kAlreadyDone, {}};
  }
  // What a killed worker left: its half-written files, a segment without its record.
  std::error_code ec;
  const std::string stem = segment_stem(index);
  for (const auto& entry : fs::directory_iterator(files.upseg.parent_path(), ec)) {
    const std::string name = entry.path().filename().string();
    const bool ours = name.starts_with(stem + ".") || name.starts_with("." + stem + ".");
    if (ours && entry.path() != files.lock) fs::remove(entry.path(), ec);
  }

  const fs::path work = files.upseg.parent_path() /
                        (stem + "." + host_name() + "-" + std::to_string(getpid()) + ".upseg");
  const double started = now_seconds();
  auto report = [&](const Progress& p) {
    try {
      write_atomically(files.running, json{{"host", host_name()},
                                           {"pid", getpid()},
                                           {"started", started},
                                           {"frames_done", p.frames_done},
                                           {"frames", segment["frames"]},
                                           {"fps", p.fps}}
                                          .dump());
    } catch (const Error&) {
      // Progress is advisory; the segment itself is what matters.
    }
    if (progress) progress(p);
  };
  pipeline::VideoRange range;
  if (!segment["start_pts"].is_null()) range.start_pts = segment["start_pts"].get<int64_t>();
  if (!segment["end_pts"].is_null()) range.end_pts = segment["end_pts"].get<int64_t>();
  range.frames = segment["frames"].get<int64_t>();
  spdlog::info("{}: {} frames of {} on {} (pid {})", where, range.frames, s.input.string(),
               host_name(), getpid());
  SegmentResult result;
  try {
    result.stats = pipeline::run_video_range(s, *r.upscaler, r.plan, range, work, report);
    if (result.stats.total_frames != range.frames)
      throw Error(s.input.string(),
                  where + ": decoded " + std::to_string(result.stats.total_frames) +
                      " frames, the plan expects " + std::to_string(range.frames),
                  ExitCode::kProcessingFailed, "decode");
    const bool start_cost = s.skip_duplicates && !segment["lookback_pts"].is_null() &&
                            start_costs_duplicate(s, segment);
    const json record = {{"index", index},
                         {"frames", result.stats.total_frames},
                         {"unique", result.stats.unique_frames},
                         {"duplicates", result.stats.duplicate_frames},
                         {"start_duplicate_lost", start_cost ? 1 : 0},
                         {"options_hash", file["options_hash"]},
                         {"input", file["identity"]},
                         {"host", host_name()},
                         {"seconds", result.stats.total_time},
                         {"finished", now_seconds()}};
    // The segment's name is taken by link(), which never replaces: of two workers that both
    // got here (a file system without locks), the second loses.
    if (link(work.c_str(), files.upseg.c_str()) != 0) {
      const int error = errno;
      fs::remove(work, ec);
      if (error == EEXIST) {
        spdlog::info("{}: another worker finished it first; this copy is dropped", where);
        fs::remove(files.running, ec);
        return {SegmentOutcome::kTakenByOtherWorker, {}};
      }
      throw Error(files.upseg.string(),
                  std::string("cannot name the segment: ") + std::strerror(error));
    }
    fs::remove(work, ec);
    write_atomically(files.record, record.dump(2) + "\n");
    pipeline::sync_path(files.upseg.parent_path());
  } catch (...) {
    fs::remove(work, ec);
    fs::remove(files.running, ec);
    throw;
  }
  fs::remove(files.running, ec);
  spdlog::info("{}: done in {:.2f}s -> {}", where, result.stats.total_time, files.upseg.string());
  return result;
}

nlohmann::json join_job(const fs::path& manifest_path, const fs::path& stats_file,
                        double wait_seconds) {
  const json m = load_manifest(manifest_path);
  // Kubernetes has no "after the other Job succeeded": the join Job waits for the segments.
  for (const auto deadline = now_seconds() + wait_seconds;;) {
    const json status = job_status(manifest_path);
    if (status["segments_done"] == status["segments"] || now_seconds() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::seconds(5));
  }
  std::vector<std::string> problems;
  for (const json& segment : m["segments"]) {
    const json& file = m["files"][segment["file"].get<size_t>()];
    const std::string problem = segment_problem(segment, file);
    if (!problem.empty())
      problems.push_back("segment " + std::to_string(segment["index"].get<int64_t>()) + " (" +
                         fs::path(segment["path"].get<std::string>()).filename().string() + ") " +
                         problem);
  }
  if (!problems.empty()) {
    std::string text;
    for (const std::string& p : problems) text += (text.empty() ? "" : "; ") + p;
    throw Error(manifest_path.string(), "cannot join: " + text);
  }

  const auto start = pipeline::Clock::now();
  json totals = {{"frames", 0},
                 {"unique_frames", 0},
                 {"duplicate_frames", 0},
                 {"segment_start_duplicates_lost", 0},
                 {"segment_seconds", 0.0}};
  json outputs = json::array();
  for (const json& file : m["files"]) {
    Settings s = settings_of(m, file, manifest_path);
    if (pipeline::input_identity(s.input) != file["identity"])
      throw UsageError(s.input.string(),
                       "the input changed since the plan (size, time or content): plan again");
    const OutputPlan plan{s.output, OutputKind::kVideo, {}};
    pipeline::check_output(plan, s.input, s.overwrite);
    std::vector<fs::path> parts;
    const int64_t first = file["first_segment"].get<int64_t>();
    json per_file = {{"frames", 0},
                     {"unique_frames", 0},
                     {"duplicate_frames", 0},
                     {"segment_start_duplicates_lost", 0}};
    for (int64_t k = first; k < first + file["segments"].get<int64_t>(); ++k) {
      const json& segment = m["segments"][size_t(k)];
      const SegmentFiles files = segment_files(segment);
      parts.push_back(files.upseg);
      const json record = read_json(files.record);
      for (json* sum : {&totals, &per_file}) {
        (*sum)["frames"] = (*sum)["frames"].get<int64_t>() + record["frames"].get<int64_t>();
        (*sum)["unique_frames"] =
            (*sum)["unique_frames"].get<int64_t>() + record["unique"].get<int64_t>();
        (*sum)["duplicate_frames"] =
            (*sum)["duplicate_frames"].get<int64_t>() + record["duplicates"].get<int64_t>();
        (*sum)["segment_start_duplicates_lost"] =
            (*sum)["segment_start_duplicates_lost"].get<int64_t>() +
            record["start_duplicate_lost"].get<int64_t>();
      }
      totals["segment_seconds"] =
          totals["segment_seconds"].get<double>() + record["seconds"].get<double>();
    }
    VideoSinkOptions vo;
    vo.encoder = s.encoder;
    vo.crf = s.crf;
    vo.overwrite = s.overwrite;
    const VideoInfo info = VideoDecoder(s.input).info();
    for (const std::string& note : join_video_segments(plan.path, parts, info, vo))
      spdlog::info("{}", note);
    spdlog::info(
        "{}: joined {} segment(s), {} frames; segment starts cost {} duplicate(s) "
        "against a one-process run",
        plan.path.string(), parts.size(), per_file["frames"].get<int64_t>(),
        per_file["segment_start_duplicates_lost"].get<int64_t>());
    per_file["input"] = file["input"];
    per_file["output"] = plan.path.string();
    per_file["segments"] = parts.size();
    outputs.push_back(per_file);
  }
  totals["join_seconds"] = pipeline::seconds_since(start);
  totals["segments"] = m["segments"].size();
  const json stats = {{"manifest", manifest_path.string()}, {"files", outputs}, {"totals", totals}};
  if (!stats_file.empty()) pipeline::write_stats_file(stats_file, stats);
  return stats;
}

nlohmann::json job_status(const fs::path& manifest_path) {
  const json m = load_manifest(manifest_path);
  json list = json::array();
  int64_t done = 0, running = 0, missing = 0, frames_done = 0, frames_total = 0;
  double fps = 0;
  for (const json& segment : m["segments"]) {
    const json& file = m["files"][segment["file"].get<size_t>()];
    const SegmentFiles files = segment_files(segment);
    const int64_t frames = segment["frames"].get<int64_t>();
    frames_total += frames;
    json entry = {{"index", segment["index"]}, {"frames", frames}};
    if (segment_problem(segment, file, false).empty()) {
      entry["state"] = "done";
      entry["frames_done"] = frames;
      frames_done += frames;
      ++done;
    } else if (pipeline::lock_held_by_other(files.lock)) {
      const json progress = read_json(files.running);
      const int64_t so_far = progress.is_object() ? progress.value("frames_done", int64_t(0)) : 0;
      entry["state"] = "running";
      entry["frames_done"] = so_far;
      if (progress.is_object()) {
        entry["host"] = progress.value("host", "");
        entry["pid"] = progress.value("pid", 0);
        fps += progress.value("fps", 0.0);
      }
      frames_done += so_far;
      ++running;
    } else {
      entry["state"] = "missing";
      entry["frames_done"] = 0;
      ++missing;
    }
    list.push_back(entry);
  }
  json eta = nullptr;
  if (frames_done == frames_total)
    eta = 0.0;
  else if (fps > 0)
    eta = double(frames_total - frames_done) / fps;
  return {{"segments", m["segments"].size()},
          {"segments_done", done},
          {"segments_running", running},
          {"segments_missing", missing},
          {"frames_done", frames_done},
          {"frames_total", frames_total},
          {"fps", fps},
          {"eta_s", eta},
          {"list", list}};
}

}  // namespace upframe::cluster
