#include "upframe/web/roots.hpp"

#include <algorithm>

#include "upframe/error.hpp"
#include "web/request_text.hpp"

namespace upframe::web {

namespace fs = std::filesystem;

Roots::Roots(const std::vector<fs::path>& folders) {
  for (const fs::path& folder : folders) {
    std::error_code ec;
    if (!fs::is_directory(folder, ec))
      throw UsageError(folder.string(), "--root is not an existing folder");
    folders_.push_back(fs::canonical(folder));
  }
  if (folders_.empty()) folders_.push_back(fs::canonical(fs::current_path()));
}

bool Roots::contains(const fs::path& canonical) const {
  return std::any_of(folders_.begin(), folders_.end(), [&](const fs::path& root) {
    auto [root_end, path_end] =
        std::mismatch(root.begin(), root.end(), canonical.begin(), canonical.end());
    return root_end == root.end();
  });
}

fs::path Roots::resolve(const std::string& path) const {
  if (path.empty()) throw RequestError(400, "empty path");
  // Longer than any path the system takes (PATH_MAX), or text no file name of ours holds.
  if (path.size() > 4096)
    throw RequestError(400,
                       "path too long (" + std::to_string(path.size()) + " bytes): " + shown(path));
  if (!is_valid_utf8(path)) throw RequestError(400, "path is not UTF-8 text: " + shown(path));
  if (has_control_character(path))
    throw RequestError(400, "path holds a control character: " + shown(path));
  const fs::path given(path);
  const fs::path absolute = given.is_absolute() ? given : folders_.front() / given;
  // Resolves symlinks and `..` in the part that exists, then normalises the rest, so
  // "root/link-out/x" and "root/new/../../x" both land where they really point.
  std::error_code ec;
  const fs::path resolved = fs::weakly_canonical(absolute, ec);
  if (ec) throw RequestError(400, shown(path) + ": " + ec.message());
  // A `..` left in the part that does not exist yet could still climb out once created.
  for (const fs::path& part : resolved)
    if (part == "..") throw RequestError(403, shown(path) + ": outside the allowed folders");
  if (!contains(resolved)) throw RequestError(403, shown(path) + ": outside the allowed folders");
  return resolved;
}

}  // namespace upframe::web
