// The folders a web client may read and write under (`upframe serve --root DIR`), and the
// check every path from a request goes through.
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace upframe::web {

// A request the server refuses, with the HTTP status it answers (400, 403, 404, 409, 413,
// 415) and the problem it names in its JSON error.
class RequestError : public std::runtime_error {
 public:
  RequestError(int status, const std::string& problem)
      : std::runtime_error(problem), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

class Roots {
 public:
  // Throws upframe::UsageError naming a root that is not an existing folder.
  explicit Roots(const std::vector<std::filesystem::path>& folders);

  // The absolute, symlink-free form of `path` (absolute, or relative to the first root),
  // which must lie in a root: `..` and symlinks are resolved first, so neither leads out.
  // Parts that do not exist yet (an output) are taken as written after the existing prefix
  // is resolved. Throws RequestError 403 otherwise, 400 for an empty path.
  std::filesystem::path resolve(const std::string& path) const;
  bool contains(const std::filesystem::path& canonical) const;
  const std::vector<std::filesystem::path>& folders() const { return folders_; }

 private:
  std::vector<std::filesystem::path> folders_;  // canonical
};

}  // namespace upframe::web
