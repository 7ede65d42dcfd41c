// What the distributed-job module (cluster.cpp) shares with its scheduler writers
// (cluster_schedulers.cpp).
#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace upframe::cluster {

// The manifest at `manifest`, checked to be a job manifest of this version (UsageError naming
// it otherwise).
nlohmann::json load_manifest(const std::filesystem::path& manifest);

// Writes `text` to `path` under a temporary name, synced, then renamed into place.
void write_atomically(const std::filesystem::path& path, const std::string& text);

// `word` in single quotes for sh.
std::string shell_quote(const std::string& word);

// This executable's path (/proc/self/exe), or "upframe" when unknown.
std::filesystem::path this_program();

}  // namespace upframe::cluster
