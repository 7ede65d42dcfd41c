#include "web/job_store.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "upframe/error.hpp"

namespace upframe::web {

namespace fs = std::filesystem;

namespace {

// Bumped when the table's layout changes; a file of another version is refused by name.
constexpr int kStoreVersion = 1;

struct StatementDeleter {
  void operator()(sqlite3_stmt* statement) const { sqlite3_finalize(statement); }
};
using Statement = std::unique_ptr<sqlite3_stmt, StatementDeleter>;

}  // namespace

fs::path default_job_store_path() {
  const char* state = std::getenv("XDG_STATE_HOME");
  if (state && *state) return fs::path(state) / "upframe" / "jobs.sqlite";
  const char* home = std::getenv("HOME");
  if (home && *home) return fs::path(home) / ".local" / "state" / "upframe" / "jobs.sqlite";
  return {};
}

JobStore::JobStore(const fs::path& path) : path_(path) {
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  if (ec) throw Error(path.parent_path().string(), "cannot create the folder: " + ec.message());
  // SQLite would let two servers share the file; each would then run the other's queue.
  const std::string lock_path = path.string() + ".lock";
  lock_fd_ = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd_ < 0) throw Error(lock_path, std::string("cannot open: ") + std::strerror(errno));
  if (flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    close(lock_fd_);
    throw Error(path.string(), "another upframe serve is using it");
  }
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK) {
    const std::string problem = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    close(lock_fd_);
    throw Error(path.string(), "cannot open: " + problem);
  }
  try {
    sqlite3_busy_timeout(db_, 2000);
    int version = 0;
    {
      sqlite3_stmt* raw = nullptr;
      if (sqlite3_prepare_v2(db_, "PRAGMA user_version", -1, &raw, nullptr) != SQLITE_OK)
        throw Error(path.string(), std::string("not a job file: ") + sqlite3_errmsg(db_));
      Statement statement(raw);
      if (sqlite3_step(raw) == SQLITE_ROW) version = sqlite3_column_int(raw, 0);
    }
    if (version == 0) {
      exec(
          "CREATE TABLE IF NOT EXISTS jobs (id INTEGER PRIMARY KEY, state TEXT NOT NULL, "
          "record TEXT NOT NULL)");
      exec("PRAGMA user_version = " + std::to_string(kStoreVersion));
    } else if (version != kStoreVersion) {
      throw Error(path.string(), "a job file of another upframe version (" +
                                     std::to_string(version) + ", this one reads " +
                                     std::to_string(kStoreVersion) + ")");
    }
  } catch (...) {
    sqlite3_close(db_);
    close(lock_fd_);
    throw;
  }
}

JobStore::~JobStore() {
  sqlite3_close(db_);
  close(lock_fd_);
}

void JobStore::exec(const std::string& sql) const {
  char* message = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
    const std::string problem = message ? message : "unknown error";
    sqlite3_free(message);
    throw Error(path_.string(), problem);
  }
}

std::vector<JobStore::Row> JobStore::load() const {
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db_, "SELECT id, record FROM jobs ORDER BY id", -1, &raw, nullptr) !=
      SQLITE_OK)
    throw Error(path_.string(), sqlite3_errmsg(db_));
  Statement statement(raw);
  std::vector<Row> rows;
  int step;
  while ((step = sqlite3_step(raw)) == SQLITE_ROW) {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(raw, 1));
    nlohmann::json record = nlohmann::json::parse(text ? text : "", nullptr, false);
    if (!record.is_object())
      throw Error(path_.string(), "job " + std::to_string(sqlite3_column_int64(raw, 0)) +
                                      ": its record is not a JSON object");
    rows.push_back({sqlite3_column_int64(raw, 0), std::move(record)});
  }
  if (step != SQLITE_DONE) throw Error(path_.string(), sqlite3_errmsg(db_));
  return rows;
}

void JobStore::save(int64_t id, const nlohmann::json& record) {
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db_, "INSERT OR REPLACE INTO jobs (id, state, record) VALUES (?, ?, ?)",
                         -1, &raw, nullptr) != SQLITE_OK)
    throw Error(path_.string(), sqlite3_errmsg(db_));
  Statement statement(raw);
  const std::string state = record.value("state", "");
  const std::string text = record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  sqlite3_bind_int64(raw, 1, id);
  sqlite3_bind_text(raw, 2, state.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(raw, 3, text.c_str(), int(text.size()), SQLITE_TRANSIENT);
  if (sqlite3_step(raw) != SQLITE_DONE) throw Error(path_.string(), sqlite3_errmsg(db_));
}

void JobStore::prune(size_t keep) {
  exec(
      "DELETE FROM jobs WHERE state NOT IN ('queued', 'running') AND id NOT IN (SELECT id "
      "FROM jobs WHERE state NOT IN ('queued', 'running') ORDER BY id DESC LIMIT " +
      std::to_string(keep) + ")");
}

}  // namespace upframe::web
