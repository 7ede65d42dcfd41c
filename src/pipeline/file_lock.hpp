// Advisory file locks that a killed process cannot leave behind: the lock of a distributed
// job's segment and of a partial run's folder. Open-file-description locks (F_OFD_SETLK):
// released by the kernel when the process dies, exclusive between two locks of one process
// too, and not dropped when the process closes another descriptor of the file (as POSIX
// record locks are); seen across NFS clients.
#pragma once

#include <filesystem>
#include <string>

namespace upframe::pipeline {

class FileLock {
 public:
  // Opens (creating) `path` and takes its lock without waiting. A file system without locks
  // counts as held (logged once per lock): the caller's atomic steps must suffice there.
  explicit FileLock(const std::filesystem::path& path);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

  bool held() const { return held_; }
  // Held: records who holds it ("pid 123 on host", the file's content) for others to name.
  void write_holder();
  // Not held: who does, as the holder wrote it ("pid 123 on host"; "another process" when it
  // wrote nothing).
  std::string holder() const;

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  bool held_ = false;
};

// Whether a live process holds the lock at `path` (without taking it).
bool lock_held_by_other(const std::filesystem::path& path);

}  // namespace upframe::pipeline
