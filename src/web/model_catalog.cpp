#include "web/model_catalog.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <stdio.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "upframe/error.hpp"
#include "upframe/nn/model_file.hpp"
#include "upframe/upscale/factory.hpp"
#include "upframe/web/roots.hpp"
#include "web/request_text.hpp"

namespace upframe::web {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// What an upload may be: the files the weight readers take. An ncnn model is two files (.param
// and .bin), which one form field cannot carry.
constexpr const char* kUploadExtensions[] = {".pth", ".pt", ".ckpt", ".safetensors", ".onnx"};

bool same_file_name_stem(const fs::path& a, const fs::path& b) { return a.stem() == b.stem(); }

std::string random_hex(size_t bytes) {
  std::string hex;
  unsigned char byte = 0;
  for (size_t i = 0; i < bytes; ++i) {
    if (getrandom(&byte, 1, 0) != 1) throw Error({}, "cannot read random bytes");
    hex += "0123456789abcdef"[byte >> 4];
    hex += "0123456789abcdef"[byte & 15];
  }
  return hex;
}

}  // namespace

ModelCatalog::ModelCatalog(fs::path given_dir)
    : given_dir_(std::move(given_dir)),
      upload_dir_(given_dir_.empty() ? user_models_dir() : given_dir_) {}

json ModelCatalog::describe(const fs::path& path, const std::string& name, int suffix_scale) {
  std::error_code ec;
  const uintmax_t size = fs::file_size(path, ec);
  const fs::file_time_type modified = fs::last_write_time(path, ec);
  {
    std::lock_guard lock(mutex_);
    auto it = cache_.find(path);
    if (it != cache_.end() && it->second.size == size && it->second.modified == modified)
      return it->second.entry;
  }
  json entry = {{"name", name},
                {"file", path.filename().string()},
                {"path", path.string()},
                {"suffix_scale", suffix_scale}};
  std::error_code parent_ec;
  entry["user"] = !upload_dir_.empty() &&
                  fs::equivalent(path.parent_path(), upload_dir_, parent_ec) && !parent_ec;
  if (const std::string purpose = model_purpose(name); !purpose.empty()) entry["purpose"] = purpose;
  try {
    const nn::ModelFileInfo info = nn::describe_model_file(path);
    entry["format"] = info.format;
    entry["family"] = info.family;
    entry["details"] = info.details;
    entry["scale"] = info.scale;
    entry["weight_precision"] = info.weight_precision;
  } catch (const Error& e) {
    entry["error"] = e.what();
  } catch (const std::exception& e) {
    // A library's own text (out of memory, say): the log has it, the list one line.
    spdlog::warn("{}: {}", path.string(), e.what());
    entry["error"] = path.string() + ": cannot be read as a model (the server's log says why)";
  }
  std::lock_guard lock(mutex_);
  cache_[path] = {size, modified, entry};
  return entry;
}

json ModelCatalog::list() {
  json models = json::array();
  std::vector<ModelFileEntry> files = list_model_files(given_dir_);
  for (const ModelFileEntry& file : files)
    models.push_back(describe(file.path, file.name, file.suffix_scale));
  return {{"folder", upload_dir_.string()}, {"models", models}};
}

ModelUpload::ModelUpload(ModelCatalog& catalog, const std::string& file_name, bool overwrite,
                         uint64_t max_bytes)
    : catalog_(catalog), name_(file_name), overwrite_(overwrite), max_bytes_(max_bytes) {
  // NAME_MAX, less the temporary's additions (".", ".upframe-upload-" and 16 hex digits).
  const std::string rule = "a model file's name, without a folder, not hidden";
  check_upload_file_name(file_name, 255 - 40, rule);
  // A backslash is a folder separator to the Windows browsers a name may come from.
  if (file_name.find('\\') != std::string::npos)
    throw RequestError(400, "bad file name '" + shown(file_name, 40) + "' (" + rule + ")");
  const fs::path name(file_name);
  if (std::find(std::begin(kUploadExtensions), std::end(kUploadExtensions),
                name.extension().string()) == std::end(kUploadExtensions))
    throw RequestError(415, shown(file_name) +
                                ": not a model file name (.pth, .pt, .ckpt, .safetensors or "
                                ".onnx; an ncnn model is two files: copy its .param and .bin "
                                "into the models folder)");
  const fs::path& folder = catalog.upload_dir();
  if (folder.empty())
    throw RequestError(409,
                       "no models folder to upload into ($XDG_DATA_HOME and $HOME are unset; "
                       "start the server with --models-dir)");
  target_ = folder / name;
  const std::string stem = name.stem().string();
  // A job names the model by its NAME (the stem): one a request can carry, and not one read as
  // a path (NAME.param, x.onnx).
  if (stem.size() > 64)
    throw RequestError(400, shown(file_name, 40) + ": the model's name is too long (" +
                                std::to_string(stem.size()) + " bytes before the extension, at " +
                                "most 64)");
  const std::string inner = fs::path(stem).extension().string();
  if (inner == ".param" || nn::is_weight_file_extension(fs::path(stem)))
    throw RequestError(400, shown(file_name) + ": a model's name may not end in " + inner);
  if (stem == "lanczos" || stem == "bicubic")
    throw RequestError(409, shown(file_name) + ": '" + stem + "' is a built-in resampler's name");
  std::error_code ec;
  if (fs::exists(target_, ec) && !overwrite)
    throw RequestError(409, shown(file_name) +
                                ": already in the models folder (ask to overwrite it, or choose "
                                "another name)");
  // Another file with this NAME (another extension, or another folder) would decide which one
  // a job gets by the search order, not by what the user just uploaded.
  for (const ModelFileEntry& file : list_model_files(catalog.given_dir()))
    if (same_file_name_stem(file.path, name) && !fs::equivalent(file.path, target_, ec))
      throw RequestError(409, shown(file_name) + ": the model '" + stem + "' is already there (" +
                                  file.path.string() + "); choose another name");
  fs::create_directories(folder, ec);
  if (ec)
    throw RequestError(500, folder.string() + ": cannot create the models folder: " + ec.message());
  temporary_ =
      folder / ("." + stem + ".upframe-upload-" + random_hex(8) + name.extension().string());
  fd_ = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw RequestError(500,
                       temporary_.string() + ": cannot write the upload: " + std::strerror(errno));
}

ModelUpload::~ModelUpload() {
  if (fd_ >= 0) ::close(fd_);
  if (!kept_ && !temporary_.empty()) {
    std::error_code ec;
    fs::remove(temporary_, ec);
  }
}

void ModelUpload::write(const char* data, size_t size) {
  written_ += size;
  if (written_ > max_bytes_)
    throw RequestError(413, shown(name_) + ": larger than the model upload limit (" +
                                std::to_string(max_bytes_ >> 20) + " MiB, --max-model-upload-mb)");
  while (size > 0) {
    const ssize_t done = ::write(fd_, data, size);
    if (done < 0 && errno == EINTR) continue;
    if (done <= 0)
      throw RequestError(500,
                         target_.string() + ": cannot write the upload: " + std::strerror(errno));
    data += done;
    size -= size_t(done);
  }
}

json ModelUpload::keep() {
  if (::close(fd_) != 0) {
    fd_ = -1;
    throw RequestError(500,
                       target_.string() + ": cannot write the upload: " + std::strerror(errno));
  }
  fd_ = -1;
  if (written_ == 0) throw RequestError(400, shown(name_) + ": empty file");
  // The readers a job uses: whatever would fail a run fails here, before anything is kept.
  try {
    nn::describe_model_file(temporary_);
  } catch (const Error& e) {
    throw RequestError(422, shown(name_) + ": " + e.problem());
  }
  if (overwrite_) {
    std::error_code ec;
    fs::rename(temporary_, target_, ec);
    if (ec) throw RequestError(500, target_.string() + ": " + ec.message());
  } else if (::renameat2(AT_FDCWD, temporary_.c_str(), AT_FDCWD, target_.c_str(),
                         RENAME_NOREPLACE) != 0) {
    if (errno == EEXIST)
      throw RequestError(409, shown(name_) + ": already in the models folder (uploaded meanwhile)");
    throw RequestError(500, target_.string() + ": " + std::strerror(errno));
  }
  kept_ = true;
  spdlog::info("model upload: {} ({} bytes)", target_.string(), written_);
  const ModelFileEntry file = [&] {
    for (const ModelFileEntry& entry : list_model_files(catalog_.given_dir()))
      if (std::error_code ec; fs::equivalent(entry.path, target_, ec)) return entry;
    return ModelFileEntry{target_, fs::path(name_).stem().string(), 0};
  }();
  return catalog_.describe(target_, file.name, file.suffix_scale);
}

}  // namespace upframe::web
