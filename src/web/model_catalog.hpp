// The models `upframe serve` offers: every model file of the models folders, described by the
// same readers `upframe model-info` uses, and model files a user uploads into their own models
// folder, checked by those readers before they are kept (docs/WEB.md, "Models").
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

namespace upframe::web {

class ModelCatalog {
 public:
  // `given_dir`: --models-dir (empty: none). Uploads go there, else to the user's models
  // folder ($XDG_DATA_HOME/upframe/models), created when the first one comes.
  explicit ModelCatalog(std::filesystem::path given_dir);

  const std::filesystem::path& given_dir() const { return given_dir_; }
  const std::filesystem::path& upload_dir() const { return upload_dir_; }

  // {"folder": the upload folder, "models": [entry...]}, an entry per model file in search
  // order: {"name" (what a job's "model" is), "file", "path", "suffix_scale" (N of NAME-xN,
  // else 0), "user" (in the upload folder), "purpose"?} and what model-info says ("format",
  // "family", "details", "scale", "weight_precision") or, for a file the readers refuse,
  // "error" (one line). Descriptions are cached by path, size and modification time.
  nlohmann::json list();

  // The entry of one model file (described now, or from the cache).
  nlohmann::json describe(const std::filesystem::path& path, const std::string& name,
                          int suffix_scale);

 private:
  struct Described {
    uintmax_t size = 0;
    std::filesystem::file_time_type modified;
    nlohmann::json entry;
  };
  std::filesystem::path given_dir_;
  std::filesystem::path upload_dir_;
  std::mutex mutex_;
  std::map<std::filesystem::path, Described> cache_;
};

// One model file being uploaded: its name checked (no folder part, not hidden, an extension of
// the weight readers, no clash with a model of the same name), its bytes written to a hidden
// temporary in the upload folder, then read by the model readers and renamed into place. The
// temporary is removed whatever happens unless kept. Throws upframe::web::RequestError with the
// status the server answers.
class ModelUpload {
 public:
  ModelUpload(ModelCatalog& catalog, const std::string& file_name, bool overwrite,
              uint64_t max_bytes);
  ~ModelUpload();
  ModelUpload(const ModelUpload&) = delete;
  ModelUpload& operator=(const ModelUpload&) = delete;

  // 413 once more than max_bytes came.
  void write(const char* data, size_t size);
  // Reads it as a model (422 "NAME: problem" when the readers refuse it), renames it into
  // place (409 when the name was taken meanwhile, without overwrite) and returns its entry.
  nlohmann::json keep();
  uint64_t size() const { return written_; }

 private:
  ModelCatalog& catalog_;
  std::string name_;
  bool overwrite_;
  uint64_t max_bytes_;
  std::filesystem::path target_, temporary_;
  int fd_ = -1;
  uint64_t written_ = 0;
  bool kept_ = false;
};

}  // namespace upframe::web
