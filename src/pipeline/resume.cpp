#include "pipeline/resume.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <stdio.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

#include "upframe/error.hpp"

extern "C" {
#include <libavutil/hash.h>
}

namespace upframe::pipeline {

namespace fs = std::filesystem;

namespace {

constexpr int kManifestVersion = 2;       // 2: segments by first frame, checksummed files
constexpr size_t kHashedBytes = 1 << 20;  // first and last MiB of the input

}  // namespace

bool sync_path(const fs::path& path) {
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return false;
  bool ok = fsync(fd) == 0;
  close(fd);
  return ok;
}

namespace {

std::string value_text(const nlohmann::json& v) {
  return v.is_null() ? "(none)" : v.is_string() ? v.get<std::string>() : v.dump();
}

}  // namespace

fs::path partial_folder(const fs::path& final_output) {
  fs::path out = final_output.has_filename() ? final_output : final_output.parent_path();
  out += ".upframe-partial";
  return out;
}

nlohmann::json input_identity(const fs::path& input) {
  std::error_code ec;
  const uintmax_t size = fs::file_size(input, ec);
  if (ec) throw Error(input.string(), "cannot read the file size: " + ec.message());
  const auto mtime = fs::last_write_time(input, ec).time_since_epoch().count();
  std::ifstream in(input, std::ios::binary);
  std::vector<char> buffer(kHashedBytes);
  AVHashContext* hash = nullptr;
  if (av_hash_alloc(&hash, "SHA256") < 0) throw Error(input.string(), "out of memory");
  av_hash_init(hash);
  auto hash_range = [&](uintmax_t offset, size_t count) {
    in.seekg(std::streamoff(offset));
    in.read(buffer.data(), std::streamsize(count));
    av_hash_update(hash, reinterpret_cast<const uint8_t*>(buffer.data()), size_t(in.gcount()));
  };
  hash_range(0, size_t(std::min<uintmax_t>(size, kHashedBytes)));
  if (size > kHashedBytes)
    hash_range(size - std::min<uintmax_t>(size - kHashedBytes, kHashedBytes),
               size_t(std::min<uintmax_t>(size - kHashedBytes, kHashedBytes)));
  char hex[2 * AV_HASH_MAX_SIZE + 1];
  av_hash_final_hex(hash, reinterpret_cast<uint8_t*>(hex), sizeof hex);
  av_hash_freep(&hash);
  if (!in && !in.eof()) throw Error(input.string(), "cannot read the file");
  return {{"size", size}, {"mtime", int64_t(mtime)}, {"sha256_first_last_mib", hex}};
}

std::string options_hash(const nlohmann::json& options) {
  const std::string text = options.dump();
  AVHashContext* hash = nullptr;
  if (av_hash_alloc(&hash, "SHA256") < 0) throw Error({}, "out of memory");
  av_hash_init(hash);
  av_hash_update(hash, reinterpret_cast<const uint8_t*>(text.data()), text.size());
  char hex[2 * AV_HASH_MAX_SIZE + 1];
  av_hash_final_hex(hash, reinterpret_cast<uint8_t*>(hex), sizeof hex);
  av_hash_freep(&hash);
  return hex;
}

// "hash_threshold was 0, now 3, crf was 18, now 23": the options that differ.
std::string option_differences(const nlohmann::json& before, const nlohmann::json& now) {
  std::string differences;
  std::set<std::string> keys;
  for (auto it = before.begin(); it != before.end(); ++it) keys.insert(it.key());
  for (auto it = now.begin(); it != now.end(); ++it) keys.insert(it.key());
  for (const std::string& key : keys) {
    nlohmann::json a = before.contains(key) ? before[key] : nlohmann::json();
    nlohmann::json b = now.contains(key) ? now[key] : nlohmann::json();
    if (a != b)
      differences += (differences.empty() ? "" : ", ") + key + " was " + value_text(a) + ", now " +
                     value_text(b);
  }
  return differences;
}

namespace {

constexpr const char* kRecordAttribute = "user.upframe.job";
constexpr int kRecordVersion = 1;

// What identifies a finished output: a file as an input is identified; a folder by a hash of
// its files' names, sizes and modification times.
nlohmann::json output_identity(const fs::path& output) {
  std::error_code ec;
  if (!fs::is_directory(output, ec)) return input_identity(output);
  std::vector<std::string> lines;
  for (const auto& entry : fs::directory_iterator(output, ec)) {
    const uintmax_t size = entry.is_regular_file() ? entry.file_size(ec) : 0;
    const auto mtime = entry.last_write_time(ec).time_since_epoch().count();
    lines.push_back(entry.path().filename().string() + " " + std::to_string(size) + " " +
                    std::to_string(int64_t(mtime)));
  }
  if (ec) throw Error(output.string(), "cannot list the folder: " + ec.message());
  std::sort(lines.begin(), lines.end());
  nlohmann::json listing = lines;
  return {{"files", lines.size()}, {"listing_sha256", options_hash(listing)}};
}

}  // namespace

void record_finished_output(const fs::path& output, const nlohmann::json& input,
                            const nlohmann::json& options) noexcept {
  try {
    const std::string record = nlohmann::json{
        {"version", kRecordVersion},
        {"input", input},
        {"options", options},
        {"output",
         output_identity(output)}}.dump();
    if (setxattr(output.c_str(), kRecordAttribute, record.data(), record.size(), 0) != 0)
      spdlog::debug("{}: cannot record the finished job ({}); --resume will not know it",
                    output.string(), std::strerror(errno));
  } catch (const std::exception& e) {
    spdlog::debug("{}: cannot record the finished job: {}", output.string(), e.what());
  }
}

std::string finished_output_mismatch(const fs::path& output, const nlohmann::json& input,
                                     const nlohmann::json& options) {
  nlohmann::json record;
  const ssize_t size = getxattr(output.c_str(), kRecordAttribute, nullptr, 0);
  if (size > 0) {
    std::string text(size_t(size), '\0');
    const ssize_t read = getxattr(output.c_str(), kRecordAttribute, text.data(), text.size());
    if (read > 0) record = nlohmann::json::parse(text.substr(0, size_t(read)), nullptr, false);
  }
  if (!record.is_object() || record.value("version", 0) != kRecordVersion)
    return "it holds no record of a finished upframe job";
  if (record["input"] != input) return "it was made from another input, or the input changed";
  if (record["options"] != options)
    return "it was made with other options: " + option_differences(record["options"], options);
  if (record["output"] != output_identity(output)) return "it changed since it was written";
  return {};
}

namespace {

// The folder a finished partial run is renamed to before it is removed.
fs::path done_folder(const fs::path& partial) {
  fs::path done = partial;
  done += ".done";
  return done;
}

std::string refusal_for_holder(const FileLock& lock) {
  return "another upframe process (" + lock.holder() +
         ") is writing this partial run: wait for it to finish, or stop it";
}

}  // namespace

void kill_point(const char* step) {
  const char* wanted = std::getenv("UPFRAME_TEST_KILL_AT");
  if (wanted && std::strcmp(wanted, step) == 0) raise(SIGKILL);
}

PartialRun::PartialRun(const fs::path& final_output, const nlohmann::json& input,
                       const nlohmann::json& options, bool resume, bool overwrite)
    : folder_(partial_folder(final_output)) {
  std::error_code ec;
  // What a finished run's removal left when it was killed.
  if (fs::exists(done_folder(folder_), ec)) fs::remove_all(done_folder(folder_), ec);
  // Twice at most: a folder that appears between the check and the rename is then opened.
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (fs::exists(folder_, ec)) {
      open_existing(input, options, resume, overwrite);
      if (lock_) return;  // continued; else removed (-y): made afresh below
    } else if (resume && attempt == 0) {
      spdlog::info("--resume: no partial run at {}, starting from the beginning", folder_.string());
    }
    if (create(input, options)) return;
  }
  throw Error(folder_.string(), "another process keeps creating this partial run");
}

PartialRun::~PartialRun() = default;

void PartialRun::open_existing(const nlohmann::json& input, const nlohmann::json& options,
                               bool resume, bool overwrite) {
  std::error_code ec;
  const std::string where = folder_.string();
  auto lock = std::make_unique<FileLock>(folder_ / kLockName);
  if (!lock->held()) throw UsageError(where, refusal_for_holder(*lock));
  if (!resume && overwrite) {
    spdlog::info("removing the partial run at {} (-y)", where);
    fs::remove_all(folder_, ec);
    if (ec) throw Error(where, "cannot remove the partial run: " + ec.message());
    return;
  }
  if (!resume)
    throw UsageError(where,
                     "a partial run exists here: use --resume to continue it, or -y to "
                     "start over");
  nlohmann::json old;
  try {
    std::ifstream in(folder_ / kManifestName);
    if (!in) throw std::runtime_error("missing");
    old = nlohmann::json::parse(in);
    if (old.value("version", 0) != kManifestVersion || !old["segments"].is_array())
      throw std::runtime_error("version");
  } catch (const std::exception&) {
    throw UsageError(where,
                     "the partial run has no readable manifest: remove the folder "
                     "(or use -y without --resume) to start over");
  }
  if (old["input"] != input)
    throw UsageError(where,
                     "the input changed since the partial run (size, time or "
                     "content): remove the folder, or use -y without --resume");
  if (old["options_hash"] != options_hash(options))
    throw UsageError(where, "--resume with other options than the partial run (" +
                                option_differences(old["options"], options) +
                                "): use the same options, or -y without --resume to start "
                                "over");
  lock_ = std::move(lock);
  lock_->write_holder();
  manifest_ = old;
  const nlohmann::json& listed = manifest_["segments"];
  int64_t end = 0;
  for (size_t i = 0; i < listed.size(); ++i) {
    const nlohmann::json& seg = listed[i];
    const std::string field = "segments[" + std::to_string(i) + "]";
    auto number = [&](const char* key, int64_t min) {
      if (!seg.is_object() || !seg.contains(key) || !seg[key].is_number_integer() ||
          seg[key].get<int64_t>() < min)
        throw UsageError((folder_ / kManifestName).string(),
                         "field " + field + "." + key + ": must be an integer of at least " +
                             std::to_string(min) +
                             " (a damaged manifest: remove the folder, or use -y without "
                             "--resume)");
      return seg[key].get<int64_t>();
    };
    const int64_t first = number("first_frame", end), frames = number("frames", 1);
    end = first + frames;
    // A segment damaged since it was written (a flipped bit, a truncation) is made again.
    const fs::path file = segment_path(first);
    if (const std::string problem = segment_file_problem(file); !problem.empty()) {
      spdlog::warn("{}: {}: it is made again", file.string(), problem);
      fs::remove(file, ec);
      continue;
    }
    segments_[first] = frames;
  }
  // Files half written when the run stopped.
  for (const auto& entry : fs::directory_iterator(folder_, ec))
    if (entry.path().filename().string().starts_with(".") &&
        entry.path().string().find(".upframe-tmp") != std::string::npos)
      fs::remove(entry.path(), ec);
  if (segments_.size() != manifest_["segments"].size()) save(folder_);
  resumed_ = true;
  spdlog::info("resuming the partial run at {} ({} finished segment(s))", where, segments_.size());
}

bool PartialRun::create(const nlohmann::json& input, const nlohmann::json& options) {
  std::error_code ec;
  // Built under a name of its own with its lock and manifest, then renamed into place without
  // replacing anything: another process sees no partial folder, or a whole locked one.
  std::string name = ".";
  name += folder_.filename().string();
  name += '.';
  name += std::to_string(getpid());
  name += ".upframe-tmp";
  const fs::path building = folder_.parent_path() / name;
  fs::remove_all(building, ec);
  fs::create_directory(building, ec);
  if (ec) throw Error(folder_.string(), "cannot create the partial-run folder: " + ec.message());
  lock_ = std::make_unique<FileLock>(building / kLockName);
  lock_->write_holder();
  manifest_ = {{"version", kManifestVersion},
               {"input", input},
               {"options", options},
               {"options_hash", options_hash(options)},
               {"segments", nlohmann::json::array()}};
  try {
    save(building);
  } catch (...) {
    lock_.reset();
    fs::remove_all(building, ec);
    throw;
  }
  if (renameat2(AT_FDCWD, building.c_str(), AT_FDCWD, folder_.c_str(), RENAME_NOREPLACE) == 0) {
    sync_path(folder_.parent_path());
    return true;
  }
  const int error = errno;
  lock_.reset();
  fs::remove_all(building, ec);
  if (error == EEXIST || error == ENOTEMPTY) return false;
  throw Error(folder_.string(),
              std::string("cannot create the partial-run folder: ") + std::strerror(error));
}

fs::path PartialRun::segment_path(int64_t first_frame) const {
  char name[40];
  std::snprintf(name, sizeof name, "seg_%08lld.upseg", static_cast<long long>(first_frame));
  return folder_ / name;
}

int64_t PartialRun::frames_kept() const {
  int64_t frames = 0;
  for (const auto& [first, count] : segments_) frames += count;
  return frames;
}

void PartialRun::record_segment(int64_t first_frame, int64_t frames) {
  segments_[first_frame] = frames;
  save(folder_);
}

void PartialRun::forget_segment(int64_t first_frame) {
  segments_.erase(first_frame);
  save(folder_);
  std::error_code ec;
  fs::remove(segment_path(first_frame), ec);
}

void PartialRun::save(const fs::path& folder) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [first, frames] : segments_)
    list.push_back({{"first_frame", first},
                    {"frames", frames},
                    {"file", segment_path(first).filename().string()}});
  manifest_["segments"] = list;
  const fs::path target = folder / kManifestName;
  const fs::path temporary = folder / ".manifest.json.upframe-tmp";
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << manifest_.dump(2) << "\n";
    out.close();
    if (!out) throw Error(target.string(), "cannot write the manifest");
  }
  if (!sync_path(temporary)) throw Error(target.string(), "cannot sync the manifest");
  std::error_code ec;
  fs::rename(temporary, target, ec);
  if (ec) throw Error(target.string(), "cannot write the manifest: " + ec.message());
  sync_path(folder);
}

void PartialRun::remove() noexcept {
  std::error_code ec;
  // One rename takes the folder away whole; what a kill leaves of the removal after it is a
  // `.done` folder that the next run on this output removes.
  const fs::path done = done_folder(folder_);
  fs::remove_all(done, ec);
  fs::rename(folder_, done, ec);
  const fs::path doomed = ec ? folder_ : done;
  if (!ec) {
    kill_point("partial-renamed");
    fs::remove(done / kManifestName, ec);
    kill_point("partial-half-removed");
  }
  fs::remove_all(doomed, ec);
  if (ec)
    spdlog::warn("{}: cannot remove the partial-run folder: {}", doomed.string(), ec.message());
  lock_.reset();
}

bool remove_finished_leftovers(const fs::path& output) {
  std::error_code ec;
  const fs::path partial = partial_folder(output);
  bool any = false;
  if (fs::exists(done_folder(partial), ec)) {
    fs::remove_all(done_folder(partial), ec);
    any = true;
  }
  if (fs::exists(partial, ec)) {
    FileLock lock(partial / PartialRun::kLockName);
    if (!lock.held()) throw UsageError(partial.string(), refusal_for_holder(lock));
    spdlog::info("{}: removing the partial run of the finished job", partial.string());
    fs::remove_all(partial, ec);
    if (ec) throw Error(partial.string(), "cannot remove the partial-run folder: " + ec.message());
    any = true;
  }
  return any;
}

SegmentCuts::SegmentCuts(std::map<int64_t, int64_t> kept, int64_t segment_frames,
                         double max_seconds)
    : kept_(std::move(kept)),
      segment_frames_(std::max<int64_t>(1, segment_frames)),
      max_seconds_(max_seconds) {}

bool SegmentCuts::kept(int64_t index) const {
  auto it = kept_.upper_bound(index);
  if (it == kept_.begin()) return false;
  --it;
  return index < it->first + it->second;
}

bool SegmentCuts::starts_segment(int64_t index) {
  const auto now = std::chrono::steady_clock::now();
  bool start = false;
  auto after = kept_.upper_bound(index);
  if (index == 0 || kept_.count(index)) {
    start = true;  // the first frame, or a kept segment's
  } else if (after != kept_.begin() &&
             index <= std::prev(after)->first + std::prev(after)->second) {
    // Inside a kept segment: no cut; just after it: one (where the run that made it stopped).
    start = index == std::prev(after)->first + std::prev(after)->second;
  } else {
    start =
        index - current_ >= segment_frames_ ||
        (max_seconds_ > 0 && std::chrono::duration<double>(now - started_).count() >= max_seconds_);
  }
  if (start) {
    current_ = index;
    started_ = now;
  }
  return start;
}

namespace {

class SegmentedVideoSink final : public FrameSink {
 public:
  SegmentedVideoSink(PartialRun& run, const fs::path& output, const VideoInfo& in, int width,
                     int height, const VideoSinkOptions& options, int64_t segment_frames)
      : run_(run),
        output_(output),
        in_(in),
        width_(width),
        height_(height),
        options_(options),
        segment_frames_(std::max<int64_t>(1, segment_frames)) {}
  ~SegmentedVideoSink() override { current_.reset(); }

  void write_unique(int64_t index, const Frame& frame, int64_t pts) override {
    write(index, frame, pts);
  }
  void write_duplicate(int64_t index, int64_t, const Frame& frame, int64_t pts) override {
    write(index, frame, pts);
  }
  void start_segment(int64_t) override { close_current(); }
  void keep_written(int64_t index, int64_t) override {
    auto it = run_.segments().upper_bound(index);
    if (it == run_.segments().begin() || index >= std::prev(it)->first + std::prev(it)->second)
      throw Error(output_.string(), "internal: frame of an unfinished segment kept",
                  ExitCode::kProcessingFailed, "save", index);
    frames_seen_ = std::max(frames_seen_, index + 1);
  }

  void finish() override {
    close_current();
    if (frames_seen_ == 0)
      throw Error(output_.string(), "no frames were written", ExitCode::kProcessingFailed, "save");
    std::vector<fs::path> files;
    int64_t frames = 0;
    for (const auto& [first, count] : run_.segments()) {
      if (first != frames)
        throw Error(run_.segment_path(frames).string(), "internal: segment missing at the end",
                    ExitCode::kProcessingFailed, "save");
      frames += count;
      files.push_back(run_.segment_path(first));
    }
    if (frames != frames_seen_)
      throw Error(run_.folder().string(),
                  "the segments hold " + std::to_string(frames) + " frames, the input " +
                      std::to_string(frames_seen_),
                  ExitCode::kProcessingFailed, "save");
    // Checked whole before the join begins, so a damaged one is dropped and made again by
    // --resume rather than failing the join part-way (the join checks again as it reads).
    for (const auto& [first, count] : run_.segments()) {
      const fs::path file = run_.segment_path(first);
      const std::string problem = segment_file_problem(file);
      if (problem.empty()) continue;
      run_.forget_segment(first);
      throw DamagedSegment(file.string(),
                           problem + "; it was dropped: run again with --resume to make it again",
                           ExitCode::kProcessingFailed, "save");
    }
    VideoSinkOptions join_options = options_;
    join_options.before_rename = [this](const fs::path& joined) {
      if (options_.before_rename) options_.before_rename(joined);
      kill_point("joined");
    };
    notes_ = join_video_segments(output_, files, in_, join_options);
    kill_point("output-renamed");
    run_.remove();
  }
  // What was written of the open segment is kept: it is closed at the last frame written.
  void suspend() noexcept override {
    try {
      if (current_ && current_frames_ > 0) close_current();
    } catch (const std::exception& e) {
      spdlog::warn("{}: the open segment could not be kept: {}", output_.string(), e.what());
    }
    if (current_) current_->abort();
    current_.reset();
  }
  void abort() noexcept override {
    if (current_) current_->abort();
    current_.reset();
    run_.remove();
  }
  std::vector<std::string> notes() const override { return notes_; }

 private:
  void write(int64_t index, const Frame& frame, int64_t pts) {
    if (!current_) {
      current_ = make_video_segment_sink(run_.segment_path(index), output_, in_, width_, height_,
                                         options_);
      current_first_ = index;
      current_frames_ = 0;
    }
    // Every frame is encoded (a duplicate again from its source's pixels), so each segment
    // stands alone.
    current_->write_unique(index, frame, pts);
    ++current_frames_;
    frames_seen_ = std::max(frames_seen_, index + 1);
    if (current_frames_ >= segment_frames_) close_current();
  }
  void close_current() {
    if (!current_) return;
    current_->finish();
    current_.reset();
    run_.record_segment(current_first_, current_frames_);
  }

  PartialRun& run_;
  fs::path output_;
  VideoInfo in_;
  int width_, height_;
  VideoSinkOptions options_;
  int64_t segment_frames_;
  std::unique_ptr<FrameSink> current_;
  int64_t current_first_ = -1;
  int64_t current_frames_ = 0;
  int64_t frames_seen_ = 0;
  std::vector<std::string> notes_;
};

}  // namespace

std::unique_ptr<FrameSink> make_segmented_video_sink(PartialRun& run, const fs::path& output,
                                                     const VideoInfo& in, int width, int height,
                                                     const VideoSinkOptions& options,
                                                     int64_t segment_frames) {
  return std::make_unique<SegmentedVideoSink>(run, output, in, width, height, options,
                                              segment_frames);
}

}  // namespace upframe::pipeline
