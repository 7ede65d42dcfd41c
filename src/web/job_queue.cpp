#include "upframe/web/job_queue.hpp"

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <filesystem>

#include "upframe/error.hpp"
#include "upframe/pipeline/batch.hpp"
#include "web/job_store.hpp"

namespace upframe::web {

namespace fs = std::filesystem;

namespace {

// Log lines kept per job (the page shows the last ones; a long job must not grow without end).
constexpr size_t kMaxLogLines = 2000;
// Of which the store keeps the last ones, and ended jobs it keeps.
constexpr size_t kStoredLogLines = 200;
constexpr size_t kStoredEndedJobs = 100;

thread_local bool this_thread_logs_for_no_job = false;

// Forwards each log line to the queue, which gives it to the running job.
class JobLogSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit JobLogSink(JobQueue& queue) : queue_(queue) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    if (this_thread_logs_for_no_job) return;
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

static JobState state_from_name(const std::string& name) {
  for (JobState state : {JobState::kQueued, JobState::kRunning, JobState::kDone, JobState::kFailed,
                         JobState::kCancelled})
    if (name == state_name(state)) return state;
  return JobState::kFailed;
}

JobQueue::JobQueue() {
  auto sink = std::make_shared<JobLogSink>(*this);
  spdlog::default_logger()->sinks().push_back(sink);
  log_sink_ = sink;
}

void JobQueue::exclude_this_thread_from_job_logs() { this_thread_logs_for_no_job = true; }

void JobQueue::start(const fs::path& store_path, SettingsFromRequest settings_from_request) {
  if (!store_path.empty()) {
    auto store = std::make_unique<JobStore>(store_path);
    std::string loaded;
    {
      std::lock_guard lock(mutex_);
      store_ = std::move(store);
      try {
        loaded = load_locked(settings_from_request);
      } catch (...) {
        store_.reset();
        jobs_.clear();
        waiting_.clear();
        next_id_ = 1;
        throw;
      }
    }
    // Logged without the lock: the log sink takes it.
    spdlog::info("{}", loaded);
    log_store_warning();
  }
  runner_ = std::thread([this] { run_jobs(); });
}

void JobQueue::log_store_warning() {
  std::string warning;
  {
    std::lock_guard lock(mutex_);
    warning.swap(store_warning_);
  }
  if (!warning.empty()) spdlog::warn("cannot keep the jobs: {}", warning);
}

std::string JobQueue::load_locked(const SettingsFromRequest& settings_from_request) {
  size_t queued = 0, interrupted = 0;
  for (const JobStore::Row& row : store_->load()) {
    auto job = std::make_shared<Job>();
    const nlohmann::json& r = row.record;
    job->id = row.id;
    job->request = r.value("request", nlohmann::json::object());
    job->state = state_from_name(r.value("state", ""));
    job->settings.input = r.value("input", "");
    job->progress = r.value("progress", nlohmann::json());
    job->stats = r.value("stats", nlohmann::json());
    if (r.contains("error") && r["error"].is_string()) job->error = r["error"];
    if (r.contains("log") && r["log"].is_array())
      for (const auto& line : r["log"])
        if (line.is_string()) job->log.push_back(line);
    if (job->state == JobState::kRunning) {
      // The server died (or was killed) while it ran: its partial run is there for Resume.
      job->state = JobState::kCancelled;
      job->error = "the server stopped while this job ran";
      ++interrupted;
      save_locked(*job);
    } else if (job->state == JobState::kQueued) {
      try {
        job->settings = settings_from_request(job->request);
        waiting_.push_back(job->id);
        ++queued;
      } catch (const std::exception& e) {
        job->state = JobState::kFailed;
        job->error = std::string("cannot run it after the restart: ") + e.what();
        save_locked(*job);
      }
    }
    jobs_[job->id] = job;
    next_id_ = std::max(next_id_, job->id + 1);
  }
  return "jobs kept in " + store_->path().string() + ": " + std::to_string(jobs_.size()) + " (" +
         std::to_string(queued) + " queued, " + std::to_string(interrupted) + " interrupted)";
}

void JobQueue::save_locked(const Job& job) {
  if (!store_) return;
  nlohmann::json record = describe_locked(job, false);
  const size_t first = job.log.size() > kStoredLogLines ? job.log.size() - kStoredLogLines : 0;
  record["log"] = std::vector<std::string>(job.log.begin() + first, job.log.end());
  try {
    store_->save(job.id, record);
    if (job.state != JobState::kQueued && job.state != JobState::kRunning)
      store_->prune(kStoredEndedJobs);
  } catch (const std::exception& e) {
    // The jobs still run; only their record is not kept (said once, by log_store_warning).
    if (!store_failed_) store_warning_ = e.what();
    store_failed_ = true;
  }
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
  {
    std::lock_guard lock(mutex_);
    job->id = next_id_++;
    jobs_[job->id] = job;
    waiting_.push_back(job->id);
    save_locked(*job);
    changed_.notify_all();
  }
  log_store_warning();
  return job->id;
}

bool JobQueue::cancel(int64_t id) {
  {
    std::lock_guard lock(mutex_);
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return false;
    Job& job = *it->second;
    if (job.state == JobState::kQueued) {
      job.state = JobState::kCancelled;
      waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), id), waiting_.end());
      save_locked(job);
      changed_.notify_all();
    } else if (job.state == JobState::kRunning) {
      job.stop.store(SIGINT);  // ends like Ctrl-C: partial run kept
    }
  }
  log_store_warning();
  return true;
}

void JobQueue::shutdown() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    if (!store_)
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
      // An image has one frame and no progress events of its own.
      if (!fs::is_directory(job->settings.input) && is_image_path(job->settings.input)) {
        Progress none_yet;
        none_yet.frames_total = 1;
        job->progress = none_yet.to_json();
        ++job->progress_version;
      }
      running_ = job;
      save_locked(*job);
      changed_.notify_all();
    }
    log_store_warning();
    run_one(*job);
    std::lock_guard lock(mutex_);
    running_.reset();
    changed_.notify_all();
  }
}

void JobQueue::run_one(Job& job) {
  spdlog::info("job {}: {} started", job.id, job.settings.input.string());
  // The first progress event is saved at once (a job killed in its first seconds still shows
  // where it got to), then one every 2 s.
  auto last_saved = std::chrono::steady_clock::now() - std::chrono::seconds(3);
  auto on_progress = [this, &job, &last_saved](const Progress& p) {
    {
      std::lock_guard lock(mutex_);
      job.progress = p.to_json();
      ++job.progress_version;
      // Now and then in the store too: a server that dies shows where the job got to.
      if (std::chrono::steady_clock::now() - last_saved > std::chrono::seconds(2)) {
        save_locked(job);
        last_saved = std::chrono::steady_clock::now();
      }
      changed_.notify_all();
    }
    log_store_warning();
  };
  JobState end = JobState::kDone;
  nlohmann::json stats;
  std::string error;
  std::optional<Progress> image_progress;
  try {
    if (fs::is_directory(job.settings.input)) {
      const BatchResult batch = run_batch(job.settings, on_progress, &job.stop);
      stats = batch.to_json();
      if (const int failed = batch.failed(); failed > 0) {
        // Named in the job's error (the page shows it and lists the files), not a quiet "done".
        const auto first = std::find_if(batch.files.begin(), batch.files.end(),
                                        [](const BatchFileResult& f) { return !f.ok; });
        error = std::to_string(failed) + " of " + std::to_string(batch.files.size()) +
                " files failed (first: " + first->error + ")";
        if (size_t(failed) == batch.files.size()) end = JobState::kFailed;
        spdlog::warn("job {}: {}", job.id, error);
      }
    } else {
      const JobStats one = run_job(job.settings, on_progress, &job.stop);
      stats = one.to_json();
      if (is_image_path(job.settings.input)) {
        image_progress.emplace();
        image_progress->frames_done = image_progress->frames_total = 1;
        image_progress->unique = 1;
        image_progress->elapsed_s = one.total_time;
        image_progress->eta_s = 0;
        image_progress->final = true;
      }
    }
    spdlog::info("job {}: {}", job.id, end == JobState::kDone ? "done" : "failed");
  } catch (const Interrupted&) {
    end = JobState::kCancelled;
    error = "stopped";
    spdlog::info("job {}: stopped", job.id);
  } catch (const std::exception& e) {
    end = JobState::kFailed;
    error = e.what();
    spdlog::error("job {}: {}", job.id, error);
  }
  {
    std::lock_guard lock(mutex_);
    job.state = end;
    job.stats = stats;
    job.error = error;
    if (image_progress) {
      job.progress = image_progress->to_json();
      ++job.progress_version;
    }
    save_locked(job);
    changed_.notify_all();
  }
  log_store_warning();
}

// Whether the partial run a stopped or failed job leaves (docs/INTERFACE.md:
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
