// The jobs of `upframe serve`: queued in order, run one at a time on their own thread (a
// job already uses every core), each with its own stop request, its progress (the events of
// --progress-json), its log lines and, at the end, its stats or error.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "upframe/config.hpp"
#include "upframe/pipeline/job.hpp"

namespace upframe::web {

enum class JobState { kQueued, kRunning, kDone, kFailed, kCancelled };
const char* state_name(JobState state);

// What a client watching a job has not seen yet (JobQueue::wait_for_news).
struct JobNews {
  std::vector<std::string> log_lines;
  std::optional<nlohmann::json> progress;  // the latest, when it changed
  std::optional<nlohmann::json> finished;  // the job as describe() gives it, once it ended
};

class JobStore;

// Where a watcher is: lines and progress already sent.
struct JobCursor {
  size_t log_lines = 0;
  uint64_t progress_version = 0;
  bool finished_sent = false;
};

class JobQueue {
 public:
  // The settings of a job from its request (as submit() got it), checked again: a queued
  // job read back after a restart.
  using SettingsFromRequest = std::function<Settings(const nlohmann::json& request)>;

  // Installs a log sink on spdlog's default logger, so that the running job collects the
  // lines logged while it runs.
  JobQueue();
  // Cancels every job and waits for the running one to stop.
  ~JobQueue();
  JobQueue(const JobQueue&) = delete;
  JobQueue& operator=(const JobQueue&) = delete;

  // Reads the jobs kept in `store_path` (docs/WEB.md: a small SQLite file; empty: none, the
  // jobs live in memory only) and starts running the queue. A job that was running when the
  // last server died is "cancelled" (Resume continues its partial run); queued ones run
  // again. Throws upframe::Error naming the file when it cannot be used (the queue is then
  // not started: call again with an empty path).
  void start(const std::filesystem::path& store_path, SettingsFromRequest settings_from_request);

  // Queues a job; `request` is what the client asked (kept for display and Resume). Returns
  // its id (1, 2, ...).
  int64_t submit(const Settings& settings, const nlohmann::json& request);
  // A queued job is cancelled at once; a running one stops at its next frame (its partial
  // run kept for --resume). False for an unknown id.
  bool cancel(int64_t id);
  // Stops the running one and waits for it to end; no job starts after it. Queued jobs stay
  // queued in the store for the next start (cancelled when there is no store).
  void shutdown();

  // {"id", "state", "input", "output", "request", "progress", "stats", "error",
  //  "partial_kept", "log"?}; nullopt for an unknown id.
  std::optional<nlohmann::json> describe(int64_t id, bool with_log = true) const;
  nlohmann::json list() const;
  // Waits up to `wait` for something new about job `id` past `cursor` and moves the cursor.
  // nullopt for an unknown id.
  std::optional<JobNews> wait_for_news(int64_t id, JobCursor& cursor,
                                       std::chrono::milliseconds wait);
  // Wakes every wait_for_news() (the server is stopping).
  void wake_watchers();

  // A log line for the running job (called by the log sink).
  void add_log_line(const std::string& line);
  // Lines logged by the calling thread from now on are not the running job's (a request
  // handler's thread: a preview logs too).
  static void exclude_this_thread_from_job_logs();

 private:
  struct Job;
  static bool partial_run_kept(const Job& job);
  void run_jobs();
  void run_one(Job& job);
  nlohmann::json describe_locked(const Job& job, bool with_log) const;
  // Reads the store's jobs; returns the line saying what it found (logged without the lock:
  // the log sink takes it).
  std::string load_locked(const SettingsFromRequest& settings_from_request);
  void save_locked(const Job& job);
  // The store's first failure, said once, outside the lock.
  void log_store_warning();

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::map<int64_t, std::shared_ptr<Job>> jobs_;
  std::deque<int64_t> waiting_;
  std::shared_ptr<Job> running_;
  int64_t next_id_ = 1;
  bool stopping_ = false;
  std::unique_ptr<JobStore> store_;
  bool store_failed_ = false;
  std::string store_warning_;  // the first failure, until logged
  std::shared_ptr<void> log_sink_;
  std::thread runner_;
};

}  // namespace upframe::web
