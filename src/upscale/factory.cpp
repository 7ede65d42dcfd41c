#include "upframe/upscale/factory.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <system_error>

#include "upframe/cuda_device.hpp"
#include "upframe/error.hpp"
#include "upframe/nn/model.hpp"
#include "upframe/nn/model_file.hpp"
#include "upframe/upscale/neural_upscaler.hpp"

namespace upframe {

namespace fs = std::filesystem;

namespace {

std::string join(const std::vector<std::string>& items, const std::string& separator) {
  std::string text;
  for (size_t i = 0; i < items.size(); ++i) text += (i ? separator : "") + items[i];
  return text;
}

// "NAME-x4" -> ("NAME", 4); anything else -> (stem, 0).
std::pair<std::string, int> split_scale_suffix(const std::string& stem) {
  const size_t pos = stem.rfind("-x");
  if (pos == std::string::npos || pos + 2 >= stem.size()) return {stem, 0};
  int scale = 0;
  for (size_t i = pos + 2; i < stem.size(); ++i) {
    if (stem[i] < '0' || stem[i] > '9') return {stem, 0};
    scale = scale * 10 + (stem[i] - '0');
  }
  return {stem.substr(0, pos), scale};
}

// The model files a NAME may stand for, in the order they are tried: ncnn first (the shipped
// models), then the weight files a user downloads.
constexpr const char* kModelExtensions[] = {".param", ".pth",         ".pt",
                                            ".ckpt",  ".safetensors", ".onnx"};

bool is_model_file(const fs::path& path) {
  return std::find(std::begin(kModelExtensions), std::end(kModelExtensions),
                   path.extension().string()) != std::end(kModelExtensions);
}

// NAME -> the scales of its NAME-xN.EXT files (0 for a plain NAME.EXT).
std::map<std::string, std::set<int>> scan_models(const fs::path& user_dir) {
  std::map<std::string, std::set<int>> models;
  for (const ModelFileEntry& file : list_model_files(user_dir))
    models[file.name].insert(file.suffix_scale);
  return models;
}

std::string scales_text(const std::set<int>& scales) {
  std::vector<std::string> parts;
  for (int s : scales)
    if (s > 0) parts.push_back(std::string("x") + std::to_string(s));
  return join(parts, ", ");
}

// docs/INTERFACE.md, "Precision": "auto" (the command's default) is the fastest the device
// has: fp16 on CUDA; bf16 on a CPU where oneDNN runs avx512_bf16 or AMX, else fp32, with one
// line saying which. "" (the library's default) is fp16 on CUDA, fp32 on the CPU. One the
// device lacks is an error.
nn::Precision parse_precision(const std::string& precision, bool cuda) {
  if (precision == "auto" && !cuda) {
    const bool bf16 = nn::cpu_supports_bf16();
    // Once a process: a batch or a server makes an upscaler per file.
    static std::once_flag said;
    std::call_once(said, [bf16] {
      if (bf16)
        spdlog::info(
            "precision auto: bf16, since this CPU ({}) has avx512_bf16 or AMX "
            "(--precision fp32 for full precision)",
            nn::cpu_isa_name());
      else
        spdlog::info("precision auto: fp32, since this CPU ({}) has neither avx512_bf16 nor AMX",
                     nn::cpu_isa_name());
    });
    return bf16 ? nn::Precision::kBf16 : nn::Precision::kFp32;
  }
  if (cuda) {
    if (precision.empty() || precision == "fp16" || precision == "auto")
      return nn::Precision::kFp16;
    if (precision == "fp32") return nn::Precision::kFp32;
    if (precision == "bf16")
      throw UsageError({}, "precision bf16 is not available on CUDA (use fp16 or fp32)");
    throw UsageError({}, "unknown precision '" + precision + "' (use fp16 or fp32 on CUDA)");
  }
  if (precision.empty() || precision == "fp32") return nn::Precision::kFp32;
  if (precision == "bf16") {
    if (!nn::cpu_supports_bf16())
      throw UsageError({},
                       "precision bf16 is not available: this CPU has neither avx512_bf16 "
                       "nor AMX (use fp32)");
    return nn::Precision::kBf16;
  }
  if (precision == "fp16")
    throw UsageError({}, "precision fp16 is only available on CUDA (use fp32 or bf16 on the CPU)");
  throw UsageError({}, "unknown precision '" + precision + "' (use fp32, bf16 or fp16)");
}

// The model file `param` after the checks a run makes: it and its .bin (for ncnn) exist, it
// loads, and it gives `scale` (0: whatever it gives).
std::shared_ptr<const nn::Model> load_checked_model(const fs::path& param, int scale) {
  std::error_code ec;
  // A model that is not there is a usage problem (exit 2), as an unknown model NAME is.
  if (!fs::is_regular_file(param, ec)) throw UsageError(param.string(), "model file not found");
  if (!nn::is_weight_file_extension(param)) {
    fs::path bin = param;
    bin.replace_extension(".bin");
    if (!fs::is_regular_file(bin, ec))
      throw UsageError(bin.string(), "model weights file not found (expected beside " +
                                         param.filename().string() + ")");
  }
  std::shared_ptr<const nn::Model> model = nn::load_model_file(param);
  const int graph_scale = model->info().scale;
  if (scale != 0 && scale != graph_scale)
    throw UsageError(param.string(), "the model upscales x" + std::to_string(graph_scale) +
                                         " and cannot give --scale " + std::to_string(scale));
  return model;
}

// What the options ask for, checked: a resampler at `scale`, or the model file `model_file`
// that must give `scale` (0: whatever it gives), on the CPU or CUDA at `precision`.
struct ResolvedUpscaler {
  bool resampler = false;
  fs::path model_file;
  int scale = 0;
  bool cuda = false;
  nn::Precision precision = nn::Precision::kFp32;
};

}  // namespace

std::vector<fs::path> model_search_dirs(const fs::path& user_dir) {
  std::vector<fs::path> candidates;
  if (!user_dir.empty()) candidates.push_back(user_dir);
  if (const char* env = std::getenv("UPFRAME_MODELS_DIR"); env && *env) candidates.push_back(env);
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    candidates.push_back(exe.parent_path() / ".." / "share" / "upframe" / "models");
    candidates.push_back(exe.parent_path() / "models");
  }
#ifdef UPFRAME_SOURCE_MODELS_DIR
  candidates.push_back(UPFRAME_SOURCE_MODELS_DIR);
#endif
  if (const fs::path user = user_models_dir(); !user.empty()) candidates.push_back(user);
  std::vector<fs::path> dirs;
  for (const fs::path& dir : candidates) {
    if (!fs::is_directory(dir, ec)) continue;
    const fs::path canonical = fs::weakly_canonical(dir, ec);
    if (std::find(dirs.begin(), dirs.end(), canonical) == dirs.end()) dirs.push_back(canonical);
  }
  return dirs;
}

fs::path user_models_dir() {
  if (const char* data = std::getenv("XDG_DATA_HOME"); data && *data)
    return fs::path(data) / "upframe" / "models";
  if (const char* home = std::getenv("HOME"); home && *home)
    return fs::path(home) / ".local" / "share" / "upframe" / "models";
  return {};
}

std::vector<ModelFileEntry> list_model_files(const fs::path& user_dir) {
  std::vector<ModelFileEntry> files;
  for (const fs::path& dir : model_search_dirs(user_dir)) {
    std::error_code ec;
    std::vector<fs::path> paths;
    for (const auto& entry : fs::directory_iterator(dir, ec))
      if (is_model_file(entry.path()) && !entry.path().filename().string().starts_with("."))
        paths.push_back(entry.path());
    std::sort(paths.begin(), paths.end());
    for (const fs::path& path : paths) {
      auto [name, scale] = split_scale_suffix(path.stem().string());
      files.push_back({path, name, scale});
    }
  }
  return files;
}

std::vector<std::string> available_models(const fs::path& user_dir) {
  std::vector<std::string> names;
  for (const auto& [name, scales] : scan_models(user_dir)) {
    const std::string text = scales_text(scales);
    names.push_back(text.empty() ? name : name + " (" + text + ")");
  }
  return names;
}

std::string model_purpose(const std::string& name) {
  // models/README.md says where each comes from and what it was trained on.
  if (name == "realesr-animevideov3") return "anime / video";
  if (name == "realesr-general-x4v3") return "photos";
  if (name == "lanczos" || name == "bicubic") return "no network";
  return {};
}

namespace {

ResolvedUpscaler resolve_upscaler(const UpscalerOptions& options) {
  if (options.scale < 0)
    throw UsageError({}, "scale must be positive, not " + std::to_string(options.scale));
  if (options.tile < -1)
    throw UsageError(
        {}, "tile must be a size in pixels, 0 (none) or auto, not " + std::to_string(options.tile));
  if (options.threads < 0)
    throw UsageError(
        {}, "threads must be positive or 0 (all cores), not " + std::to_string(options.threads));

  if (options.device != "auto" && options.device != "cpu" && options.device != "cuda")
    throw UsageError({}, "unknown device '" + options.device + "' (use auto, cpu or cuda)");
  const bool resampler = options.model == "lanczos" || options.model == "bicubic";
  bool cuda = false;
  if (options.device == "cuda") {
    if (resampler)
      throw UsageError({}, options.model + " runs on the CPU only (use --device cpu or auto)");
    const CudaDeviceInfo gpu = cuda_device_info();
    if (!gpu.available)
      throw UsageError(
          {}, "device cuda is not available: " + gpu.reason + " (use --device cpu or auto)");
    cuda = true;
  } else if (options.device == "auto" && !resampler && cuda_built()) {
    const CudaDeviceInfo gpu = cuda_device_info();
    cuda = gpu.available;
    // Without a GPU, the CPU is the normal case, not news.
    if (!cuda)
      spdlog::log(gpu.device_found ? spdlog::level::info : spdlog::level::debug,
                  "GPU upscaling unavailable ({}), using the CPU", gpu.reason);
  }
  if (resampler) return {true, {}, options.scale ? options.scale : 2, false, {}};
  const nn::Precision precision = parse_precision(options.precision, cuda);

  const fs::path as_path(options.model);
  if (as_path.extension() == ".param" || nn::is_weight_file_extension(as_path) ||
      options.model.find('/') != std::string::npos)
    return {false, as_path, options.scale, cuda, precision};

  // A NAME: NAME-x{scale}.EXT, else NAME.EXT, in the first folder that has either.
  const int scale = options.scale ? options.scale : 2;
  if (!options.models_dir.empty() && !fs::is_directory(options.models_dir))
    throw UsageError(options.models_dir.string(), "models folder not found");
  for (const fs::path& dir : model_search_dirs(options.models_dir)) {
    std::error_code ec;
    for (const char* ext : kModelExtensions) {
      const fs::path scaled = dir / (options.model + "-x" + std::to_string(scale) + ext);
      if (fs::is_regular_file(scaled, ec)) return {false, scaled, scale, cuda, precision};
    }
    for (const char* ext : kModelExtensions) {
      const fs::path plain = dir / (options.model + ext);
      if (fs::is_regular_file(plain, ec)) return {false, plain, options.scale, cuda, precision};
    }
  }
  const auto models = scan_models(options.models_dir);
  if (auto it = models.find(options.model); it != models.end())
    throw UsageError({}, "model " + options.model + " cannot give --scale " +
                             std::to_string(scale) + " (it has " + scales_text(it->second) + ")");
  std::vector<std::string> searched;
  for (const fs::path& dir : model_search_dirs(options.models_dir))
    searched.push_back(dir.string());
  std::vector<std::string> names = {"lanczos", "bicubic"};
  for (const std::string& name : available_models(options.models_dir)) names.push_back(name);
  throw UsageError({}, "unknown model '" + options.model + "'; available: " + join(names, ", ") +
                           " (searched " +
                           (searched.empty() ? "no models folder" : join(searched, ", ")) + ")");
}

}  // namespace

std::unique_ptr<Upscaler> make_upscaler(const UpscalerOptions& options) {
  const ResolvedUpscaler resolved = resolve_upscaler(options);
  if (resolved.resampler) return make_swscale_upscaler(options.model, resolved.scale);
  return std::make_unique<NeuralUpscaler>(load_checked_model(resolved.model_file, resolved.scale),
                                          resolved.precision, options.tile, options.threads,
                                          resolved.cuda);
}

int upscaler_scale(const UpscalerOptions& options) {
  const ResolvedUpscaler resolved = resolve_upscaler(options);
  if (resolved.resampler) return resolved.scale;
  return load_checked_model(resolved.model_file, resolved.scale)->info().scale;
}

UpscalerOptions upscaler_options(const Settings& settings) {
  UpscalerOptions options;
  options.model = settings.model;
  options.models_dir = settings.models_dir;
  options.scale = settings.scale;
  options.device = settings.device;
  options.precision = settings.precision;
  options.tile = settings.tile;
  return options;
}

}  // namespace upframe
