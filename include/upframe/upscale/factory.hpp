// Builds the Upscaler the user asked for: a swscale resampler or a model found by name or path.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "upframe/config.hpp"
#include "upframe/upscale/upscaler.hpp"

namespace upframe {

struct UpscalerOptions {
  // "lanczos", "bicubic", a shipped model's NAME, or PATH.param (the .bin beside it).
  std::string model = "realesr-animevideov3";
  // 0 = default: read from the graph for a .param path (or a NAME with a single .param),
  // else 2.
  int scale = 0;
  std::string device =
      "auto";             // auto (CUDA for a neural model when a device is present), cpu, cuda
  std::string precision;  // "" = the device's default (fp16 on CUDA, fp32 on the CPU)
  int tile = -1;          // -1 auto, 0 none, N input pixels
  int threads = 0;        // 0 = all cores
  // --models-dir: a folder searched first for a model NAME ("" none).
  std::filesystem::path models_dir;
};

// Throws upframe::UsageError for a usage problem (unknown model name, with the list of what
// exists; a scale the model cannot give; an unavailable device or precision) and
// upframe::Error naming the file for a missing or corrupt model file.
std::unique_ptr<Upscaler> make_upscaler(const UpscalerOptions& options);

// The scale make_upscaler(options) would upscale by, with the same checks and errors, after
// loading the model file but without building the upscaler (no executor, no weights on a
// device): what a caller that plans outputs before running needs (the web server).
int upscaler_scale(const UpscalerOptions& options);

// The upscaler options of a job's settings (model, scale, device, precision, tile).
UpscalerOptions upscaler_options(const Settings& settings);

// Folders searched for a model NAME, in order: `user_dir` (--models-dir) when given,
// $UPFRAME_MODELS_DIR, <exe dir>/../share/upframe/
// models, <exe dir>/models, the source tree's models/, the user's models folder
// ($XDG_DATA_HOME/upframe/models, else ~/.local/share/upframe/models). Only the existing ones
// are returned. In each, NAME-x{scale}.EXT then NAME.EXT, EXT in .param, .pth, .pt, .ckpt,
// .safetensors, .onnx.
std::vector<std::filesystem::path> model_search_dirs(const std::filesystem::path& user_dir = {});

// The user's own models folder: $XDG_DATA_HOME/upframe/models, else
// ~/.local/share/upframe/models ("" when neither variable is set). It need not exist.
std::filesystem::path user_models_dir();

// One model file in those folders: NAME-x{N}.EXT gives name NAME and suffix_scale N, a plain
// NAME.EXT suffix_scale 0. In search order (folder, then file name); hidden files are skipped
// (the web server's upload temporaries among others).
struct ModelFileEntry {
  std::filesystem::path path;
  std::string name;
  int suffix_scale = 0;
};
std::vector<ModelFileEntry> list_model_files(const std::filesystem::path& user_dir = {});

// The models found there, as "NAME (x2, x3, x4)" or "NAME" for one without scale variants.
std::vector<std::string> available_models(const std::filesystem::path& user_dir = {});

// What a shipped model NAME (or lanczos, bicubic) is for, in a few words: "anime / video",
// "photos", "no network"; "" for another model.
std::string model_purpose(const std::string& name);

}  // namespace upframe
