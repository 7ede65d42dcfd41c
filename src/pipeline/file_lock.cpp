#include "pipeline/file_lock.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "upframe/error.hpp"

namespace upframe::pipeline {

namespace fs = std::filesystem;

namespace {

// F_OFD_SETLK / F_OFD_GETLK where the kernel has them, else POSIX record locks.
int lock_command(bool query) {
#ifdef F_OFD_SETLK
  return query ? F_OFD_GETLK : F_OFD_SETLK;
#else
  return query ? F_GETLK : F_SETLK;
#endif
}

std::string host_name() {
  char name[256] = {};
  gethostname(name, sizeof name - 1);
  return name;
}

}  // namespace

FileLock::FileLock(const fs::path& path) : path_(path) {
  fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw Error(path.string(), std::string("cannot open the lock file: ") + std::strerror(errno));
  struct flock lock {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  if (fcntl(fd_, lock_command(false), &lock) == 0) {
    held_ = true;
  } else if (errno != EAGAIN && errno != EACCES) {
    spdlog::info("{}: file locks unavailable ({}): relying on atomic renames alone", path.string(),
                 std::strerror(errno));
    held_ = true;
  }
}

FileLock::~FileLock() {
  if (fd_ >= 0) close(fd_);
}

void FileLock::write_holder() {
  const std::string text = "pid " + std::to_string(getpid()) + " on " + host_name() + "\n";
  if (ftruncate(fd_, 0) != 0 || pwrite(fd_, text.data(), text.size(), 0) != ssize_t(text.size()))
    spdlog::debug("{}: cannot record the lock's holder: {}", path_.string(), std::strerror(errno));
}

std::string FileLock::holder() const {
  char text[256] = {};
  const ssize_t n = pread(fd_, text, sizeof text - 1, 0);
  std::string who = n > 0 ? std::string(text, size_t(n)) : std::string();
  while (!who.empty() && (who.back() == '\n' || who.back() == '\r')) who.pop_back();
  return who.empty() ? "another process" : who;
}

bool lock_held_by_other(const fs::path& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct flock lock {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  const bool held = fcntl(fd, lock_command(true), &lock) == 0 && lock.l_type != F_UNLCK;
  close(fd);
  return held;
}

}  // namespace upframe::pipeline
