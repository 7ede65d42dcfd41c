// A folder of numbered images: 00000001.png upward and timestamps.csv.
//
// timestamps.csv has the header `index,pts_seconds` and one line a frame, where `index` is
// the number in the frame's file name (1 for 00000001.png) and pts_seconds its presentation
// time in seconds (6 decimals). The folder is built as `.NAME.upframe-tmp` beside the target
// and moved into place at finish(); with overwrite, the target's old numbered frames and
// timestamps.csv are removed then, and other files in it are left alone.
//
// For a resumable job the frames are built in the given work folder (OUTPUT.upframe-partial)
// instead: every file is written under a temporary name and renamed, so after a crash the
// folder holds whole frames 00000001.. upward (count_written_frames) and a resumed run
// writes only the rest; timestamps.csv is rewritten whole by every run.
#include <spdlog/spdlog.h>

#include <cstdio>
#include <deque>
#include <fstream>
#include <regex>

#include "media/libav_helpers.hpp"
#include "upframe/error.hpp"
#include "upframe/media/frame_sink.hpp"

namespace upframe {

using namespace media;
namespace fs = std::filesystem;

namespace {

bool is_numbered_frame(const fs::path& file) {
  static const std::regex kFrameName(R"(\d{8}\.(png|jpg|jpeg|webp))");
  return std::regex_match(file.filename().string(), kFrameName);
}

class FramesFolderSink final : public FrameSink {
 public:
  FramesFolderSink(const fs::path& folder, const VideoInfo& in, const FramesFolderOptions& options);
  ~FramesFolderSink() override {
    if (!finished_) abort();
  }
  void write_unique(int64_t index, const Frame& frame, int64_t pts) override;
  void write_duplicate(int64_t index, int64_t source_index, const Frame& frame,
                       int64_t pts) override;
  void finish() override;
  void abort() noexcept override;
  void keep_written(int64_t index, int64_t pts) override;
  void suspend() noexcept override;

 private:
  [[noreturn]] void fail(const std::string& problem, int64_t index = -1) const {
    throw Error(final_.string(), problem, ExitCode::kProcessingFailed, "save", index);
  }
  fs::path file_for(int64_t index) const {
    char name[32];
    std::snprintf(name, sizeof(name), "%08lld.%s", static_cast<long long>(index + 1),
                  extension_.c_str());
    return temporary_ / name;
  }
  bool in_work_folder() const { return !options_.work_folder.empty(); }
  void write_timestamp(int64_t index, int64_t pts);
  void copy_frame(int64_t index, int64_t source_index);
  void collect();
  void move_into_place();

  struct Pending {
    int64_t index;
    int64_t source_index;  // -1: waits for its encoded image
  };

  fs::path final_;
  fs::path temporary_;
  AVRational time_base_;
  FramesFolderOptions options_;
  std::string extension_;
  std::unique_ptr<ImageEncoder> encoder_;
  std::ofstream timestamps_;
  // Frames sent to a frame-threaded encoder whose files are not written yet, in order.
  std::deque<Pending> pending_;
  bool finished_ = false;
};

FramesFolderSink::FramesFolderSink(const fs::path& folder, const VideoInfo& in,
                                   const FramesFolderOptions& options)
    : final_(folder.has_filename() ? folder : folder.parent_path()),
      temporary_(options.work_folder.empty() ? temporary_sibling(final_) : options.work_folder),
      time_base_(in.time_base),
      options_(options),
      extension_(options.format == "jpeg" ? "jpg" : options.format) {
  const std::string encoder = image_encoder_name(extension_);
  if (extension_ != "png" && extension_ != "jpg" && extension_ != "webp")
    throw UsageError(final_.string(),
                     "unknown frame format '" + options.format + "' (png, jpg, webp)");
  std::error_code ec;
  if (fs::exists(final_, ec)) {
    if (!fs::is_directory(final_, ec)) fail("the output exists and is not a folder");
    if (!options_.overwrite && !fs::is_empty(final_, ec))
      fail("the output folder exists and is not empty (use -y to overwrite)");
  }
  if (in_work_folder()) {
    // Frames of an earlier run stay; files half written when it stopped go.
    for (const auto& entry : fs::directory_iterator(temporary_, ec))
      if (entry.path().filename().string().starts_with(".") &&
          entry.path().extension() == ".upframe-tmp")
        fs::remove(entry.path(), ec);
  } else {
    // A leftover from an interrupted run has our temporary name: it is ours to replace.
    fs::remove_all(temporary_, ec);
  }
  ec.clear();
  fs::create_directories(temporary_, ec);
  if (ec) fail("cannot create the folder " + temporary_.string() + ": " + ec.message());
  encoder_ = std::make_unique<ImageEncoder>(encoder, options_.quality, 0, final_.string());
  timestamps_.open(temporary_ / "timestamps.csv", std::ios::trunc);
  timestamps_ << "index,pts_seconds\n";
  if (!timestamps_) fail("cannot write timestamps.csv");
}

void FramesFolderSink::write_timestamp(int64_t index, int64_t pts) {
  char line[64];
  std::snprintf(line, sizeof(line), "%lld,%.6f\n", static_cast<long long>(index + 1),
                pts * av_q2d(time_base_));
  timestamps_ << line;
}

void FramesFolderSink::keep_written(int64_t index, int64_t pts) {
  if (finished_) fail("write after finish", index);
  if (!pending_.empty()) fail("internal: a kept frame after new ones", index);
  write_timestamp(index, pts);
}

void FramesFolderSink::write_unique(int64_t index, const Frame& frame, int64_t pts) {
  if (finished_) fail("write after finish", index);
  write_timestamp(index, pts);
  encoder_->send(frame);
  pending_.push_back({index, -1});
  collect();
}

void FramesFolderSink::write_duplicate(int64_t index, int64_t source_index, const Frame&,
                                       int64_t pts) {
  if (finished_) fail("write after finish", index);
  if (source_index < 0 || source_index >= index)
    fail("duplicate of frame " + std::to_string(source_index) + " not written before it", index);
  write_timestamp(index, pts);
  if (pending_.empty())
    copy_frame(index, source_index);
  else
    pending_.push_back({index, source_index});
}

// `.NAME.upframe-tmp` beside `file`: frames are renamed into place whole.
fs::path temporary_frame(const fs::path& file) {
  std::string name = std::string(".") + file.filename().string() + ".upframe-tmp";
  return file.parent_path() / name;
}

void FramesFolderSink::copy_frame(int64_t index, int64_t source_index) {
  std::error_code ec;
  const fs::path target = file_for(index), temporary = temporary_frame(target);
  fs::copy_file(file_for(source_index), temporary, fs::copy_options::overwrite_existing, ec);
  if (!ec) fs::rename(temporary, target, ec);
  if (ec)
    fail("cannot copy frame " + std::to_string(source_index + 1) + ": " + ec.message(), index);
}

void FramesFolderSink::collect() {
  std::string bytes;
  while (!pending_.empty() && pending_.front().source_index < 0 && encoder_->receive(bytes)) {
    const fs::path target = file_for(pending_.front().index);
    write_file(temporary_frame(target), bytes);
    std::error_code ec;
    fs::rename(temporary_frame(target), target, ec);
    if (ec) fail("cannot write " + target.string() + ": " + ec.message(), pending_.front().index);
    pending_.pop_front();
    // Duplicates queued behind it have their sources written now.
    while (!pending_.empty() && pending_.front().source_index >= 0) {
      copy_frame(pending_.front().index, pending_.front().source_index);
      pending_.pop_front();
    }
  }
}

void FramesFolderSink::finish() {
  if (finished_) return;
  encoder_->flush();
  collect();
  if (!pending_.empty()) fail("the image encoder lost frames", pending_.front().index);
  timestamps_.close();
  if (!timestamps_) fail("cannot write timestamps.csv");
  std::error_code ec;
  for (const std::string& name : options_.work_private_files) fs::remove(temporary_ / name, ec);
  move_into_place();
  finished_ = true;
}

void FramesFolderSink::move_into_place() {
  std::error_code ec;
  if (fs::exists(final_, ec)) {
    for (const auto& entry : fs::directory_iterator(final_, ec))
      if (entry.is_regular_file() &&
          (is_numbered_frame(entry.path()) || entry.path().filename() == "timestamps.csv"))
        fs::remove(entry.path(), ec);
    if (fs::is_empty(final_, ec)) fs::remove(final_, ec);
  }
  if (!fs::exists(final_, ec)) {
    fs::rename(temporary_, final_, ec);
    if (ec) fail("cannot move the frames into place: " + ec.message());
    return;
  }
  // The target holds other files: move ours in one by one.
  for (const auto& entry : fs::directory_iterator(temporary_)) {
    fs::rename(entry.path(), final_ / entry.path().filename(), ec);
    if (ec)
      fail("cannot move " + entry.path().filename().string() + " into place: " + ec.message());
  }
  fs::remove(temporary_, ec);
}

void FramesFolderSink::suspend() noexcept {
  if (!in_work_folder()) return abort();
  finished_ = true;
  timestamps_.close();
  encoder_.reset();
}

void FramesFolderSink::abort() noexcept {
  finished_ = true;
  timestamps_.close();
  encoder_.reset();
  std::error_code ec;
  fs::remove_all(temporary_, ec);
}

}  // namespace

int64_t count_written_frames(const fs::path& folder, const std::string& format) {
  const std::string extension = format == "jpeg" ? "jpg" : format;
  for (int64_t count = 0;; ++count) {
    char name[32];
    std::snprintf(name, sizeof(name), "%08lld.%s", static_cast<long long>(count + 1),
                  extension.c_str());
    std::error_code ec;
    auto size = fs::file_size(folder / name, ec);
    if (ec || size == 0) return count;
  }
}

std::unique_ptr<FrameSink> make_frames_folder_sink(const fs::path& folder, const VideoInfo& in,
                                                   const FramesFolderOptions& options) {
  return std::make_unique<FramesFolderSink>(folder, in, options);
}

}  // namespace upframe
