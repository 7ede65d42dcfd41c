#include "upframe/web/job_queue.hpp"

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <filesystem>

#include "upframe/error.hpp"
#include "upframe/pipeline/batch.hpp"

namespace upframe::web {

namespace fs = std::filesystem;

namespace {

// Log lines kept per job (the page shows the last ones; a long job must not grow without end).
constexpr size_t kMaxLogLines = 2000;

// Forwards each log line to the queue, which gives it to the running job.
class JobLogSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit JobLogSink(JobQueue& queue) : queue_(queue) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    queue_.add_log_line(std::string(spdlog::level::to_string_view(msg.level).data()) + ": " +
                        std::string(msg.payload.data(), msg.payload.size()));
  }
  void flush_() override {}

 private:
  JobQueue& queue_;
};

}  // namespace

const char* state_name(JobState state) {
  switch (state) {
    case JobState::kQueued:
      return "queued";
    case JobState::kRunning:
      return "running";
    case JobState::kDone:
      return "done";
    case JobState::kFailed:
      return "failed";
    case JobState::kCancelled:
      return "cancelled";
  }
  return "?";
}

struct JobQueue::Job {
  int64_t id = 0;
  Settings settings;
  nlohmann::json request;
  JobState state = JobState::kQueued;
  StopFlag stop{0};
  nlohmann::json progress;  // null until the first event
  uint64_t progress_version = 0;
  nlohmann::json stats;  // null until done
  std::string error;
  std::vector<std::string> log;
  size_t log_dropped = 0;  // lines dropped from the front (kMaxLogLines)
};

JobQueue::JobQueue() {
  auto sink = std::make_shared<JobLogSink>(*this);
  spdlog::default_logger()->sinks().push_back(sink);
  log_sink_ = sink;
  runner_ = std::thread([this] { run_jobs(); });
}

JobQueue::~JobQueue() {
  shutdown();
  auto& sinks = spdlog::default_logger()->sinks();
  sinks.erase(std::remove(sinks.begin(), sinks.end(), log_sink_), sinks.end());
}

int64_t JobQueue::submit(const Settings& settings, const nlohmann::json& request) {
  auto job = std::make_shared<Job>();
  job->settings = settings;
  job->request = request;
  std::lock_guard lock(mutex_);
  job->id = next_id_++;
  jobs_[job->id] = job;
  waiting_.push_back(job->id);
  changed_.notify_all();
  return job->id;
}

bool JobQueue::cancel(int64_t id) {
  std::lock_guard lock(mutex_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return false;
  Job& job = *it->second;
  if (job.state == JobState::kQueued) {
    job.state = JobState::kCancelled;
    waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), id), waiting_.end());
    changed_.notify_all();
  } else if (job.state == JobState::kRunning) {
    job.stop.store(SIGINT);  // ends like Ctrl-C: partial run kept
  }
  return true;
}

void JobQueue::shutdown() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    for (int64_t id : waiting_) jobs_[id]->state = JobState::kCancelled;
    waiting_.clear();
    if (running_) running_->stop.store(SIGINT);
    changed_.notify_all();
  }
  // The running job ends at its next frame; its end is then there for every watcher.
  if (runner_.joinable()) runner_.join();
}

void JobQueue::wake_watchers() {
  std::lock_guard lock(mutex_);
  changed_.notify_all();
}

void JobQueue::add_log_line(const std::string& line) {
  std::lock_guard lock(mutex_);
  if (!running_) return;
  running_->log.push_back(line);
  if (running_->log.size() > kMaxLogLines) {
    running_->log.erase(running_->log.begin());
    ++running_->log_dropped;
  }
  changed_.notify_all();
}

void JobQueue::run_jobs() {
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [&] { return stopping_ || !waiting_.empty(); });
      if (stopping_) return;
      job = jobs_[waiting_.front()];
      waiting_.pop_front();
      job->state = JobState::kRunning;
      running_ = job;
      changed_.notify_all();
    }
    run_one(*job);
    std::lock_guard lock(mutex_);
    running_.reset();
    changed_.notify_all();
  }
}

void JobQueue::run_one(Job& job) {
  spdlog::info("job {}: {} started", job.id, job.settings.input.string());
  auto on_progress = [this, &job](const Progress& p) {
    std::lock_guard lock(mutex_);
    job.progress = p.to_json();
    ++job.progress_version;
    changed_.notify_all();
  };
  JobState end = JobState::kDone;
  nlohmann::json stats;
  std::string error;
  try {
    if (fs::is_directory(job.settings.input))
      stats = run_batch(job.settings, on_progress, &job.stop).to_json();
    else
      stats = run_job(job.settings, on_progress, &job.stop).to_json();
    spdlog::info("job {}: done", job.id);
  } catch (const Interrupted&) {
    end = JobState::kCancelled;
    error = "stopped";
    spdlog::info("job {}: stopped", job.id);
  } catch (const std::exception& e) {
    end = JobState::kFailed;
    error = e.what();
    spdlog::error("job {}: {}", job.id, error);
  }
  std::lock_guard lock(mutex_);
  job.state = end;
  job.stats = stats;
  job.error = error;
  changed_.notify_all();
}

// Whether the partial run a stopped or failed job leaves (SPEC section 8:
// OUTPUT.upframe-partial/) is there now, for the page's Resume; a later run may have finished
// or removed it.
bool JobQueue::partial_run_kept(const Job& job) {
  if (job.state != JobState::kCancelled && job.state != JobState::kFailed) return false;
  std::error_code ec;
  return fs::exists(job.request.value("output_path", "") + ".upframe-partial", ec);
}

nlohmann::json JobQueue::describe_locked(const Job& job, bool with_log) const {
  nlohmann::json j = {
      {"id", job.id},
      {"state", state_name(job.state)},
      {"input", job.settings.input.string()},
      {"output", job.request.value("output_path", "")},
      {"request", job.request},
      {"progress", job.progress},
      {"stats", job.stats},
      {"error", job.error.empty() ? nlohmann::json() : nlohmann::json(job.error)},
      {"partial_kept", partial_run_kept(job)},
  };
  if (with_log) j["log"] = job.log;
  return j;
}

std::optional<nlohmann::json> JobQueue::describe(int64_t id, bool with_log) const {
  std::lock_guard lock(mutex_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return std::nullopt;
  return describe_locked(*it->second, with_log);
}

nlohmann::json JobQueue::list() const {
  std::lock_guard lock(mutex_);
  nlohmann::json jobs = nlohmann::json::array();
  for (const auto& [id, job] : jobs_) jobs.push_back(describe_locked(*job, false));
  return {{"jobs", jobs}};
}

std::optional<JobNews> JobQueue::wait_for_news(int64_t id, JobCursor& cursor,
                                               std::chrono::milliseconds wait) {
  std::unique_lock lock(mutex_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return std::nullopt;
  const Job& job = *it->second;
  auto ended = [&] {
    return job.state == JobState::kDone || job.state == JobState::kFailed ||
           job.state == JobState::kCancelled;
  };
  auto has_news = [&] {
    return job.log_dropped + job.log.size() > cursor.log_lines ||
           job.progress_version != cursor.progress_version || (ended() && !cursor.finished_sent);
  };
  changed_.wait_for(lock, wait, has_news);
  JobNews news;
  const size_t first = cursor.log_lines > job.log_dropped ? cursor.log_lines - job.log_dropped : 0;
  for (size_t i = first; i < job.log.size(); ++i) news.log_lines.push_back(job.log[i]);
  cursor.log_lines = job.log_dropped + job.log.size();
  if (job.progress_version != cursor.progress_version) {
    news.progress = job.progress;
    cursor.progress_version = job.progress_version;
  }
  if (ended() && !cursor.finished_sent) {
    news.finished = describe_locked(job, false);
    cursor.finished_sent = true;
  }
  return news;
}

}  // namespace upframe::web
