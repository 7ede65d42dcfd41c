// Where `upframe serve` keeps its jobs between runs: a small SQLite file, one row per job
// (its state and its record as JSON), so that the queue and the finished jobs survive a
// restart. One server at a time owns it (a lock file beside it).
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace upframe::web {

// $XDG_STATE_HOME/upframe/jobs.sqlite ($HOME/.local/state when unset); empty when neither
// variable is set.
std::filesystem::path default_job_store_path();

class JobStore {
 public:
  // Opens (creating it and its folder) the file. Throws upframe::Error naming it when it
  // cannot be opened, is not such a file, or another live server holds it.
  explicit JobStore(const std::filesystem::path& path);
  ~JobStore();
  JobStore(const JobStore&) = delete;
  JobStore& operator=(const JobStore&) = delete;

  struct Row {
    int64_t id;
    nlohmann::json record;
  };
  std::vector<Row> load() const;  // by id
  void save(int64_t id, const nlohmann::json& record);
  // Keeps the newest `keep` ended jobs (and every queued or running one).
  void prune(size_t keep);
  const std::filesystem::path& path() const { return path_; }

 private:
  void exec(const std::string& sql) const;
  std::filesystem::path path_;
  int lock_fd_ = -1;
  sqlite3* db_ = nullptr;
};

}  // namespace upframe::web
