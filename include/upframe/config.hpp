// Every option of a job, from defaults, a TOML file (docs/INTERFACE.md, "Flags and configuration") and command-line flags.
// One table describes each setting once (key, flag, kind, allowed values), so every flag has
// a snake_case key of the same name and every key a flag, and both are validated by the same
// code.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace upframe {

struct Settings {
  // Paths.
  std::filesystem::path input;
  std::filesystem::path output;  // empty: NAME_x{scale}.EXT beside the input
  bool overwrite = false;        // -y
  std::filesystem::path stats;   // --stats FILE

  // Upscaler.
  // NAME, a model file (.param, .pth/.pt/.ckpt, .safetensors, .onnx), lanczos, bicubic
  std::string model = "realesr-animevideov3";
  std::filesystem::path models_dir;  // searched first for a model NAME (docs/MODELS.md)
  int scale = 0;  // 0: not given (2, or read from the graph of a PATH model); else 1..16
  std::string device = "auto";  // auto, cpu, cuda
  // auto: fp16 on CUDA; on the CPU bf16 where it has avx512_bf16 or AMX, else fp32
  // (docs/INTERFACE.md, "Precision"). "" (the library's default): fp16 on CUDA, fp32 on CPU.
  std::string precision = "auto";
  int tile = -1;                // -1: auto, 0: no tiling
  int workers = 0;              // 0: auto

  // Duplicate detection.
  bool skip_duplicates = true;
  // Tile reuse (docs/INTERFACE.md, "Tile reuse"): with skip_duplicates, the 64x64 tiles of a
  // unique frame that did not change keep the previous unique frame's upscaled pixels.
  bool reuse_tiles = true;
  std::string dedup = "consecutive";  // consecutive, global
  int hash_size = 8;
  int hash_threshold = 0;
  int dedup_window = 32;
  // Confirmation thresholds in 8-bit levels; negative: the detector's defaults.
  double dedup_max_mean_diff = -1;
  double dedup_max_signed_mean_diff = -1;
  double dedup_max_block_diff = -1;
  double dedup_max_motion = -1;        // pixels
  double dedup_max_local_motion = -1;  // pixels

  // Pipeline and mode selection (docs/INTERFACE.md, "Mode selection").
  bool enable_gpu_pipeline = true;
  bool parallel = true;
  int pipeline_min_frames = 50;
  int preload_frames = 3;

  // Output.
  std::string encoder = "auto";
  int crf = 18;
  std::string format;  // png, jpg, webp: frames folder (video input) or image format
  int quality = 95;

  // Long jobs and console.
  bool resume = false;
  int segment_frames = 240;  // frames per resumable video segment (docs/INTERFACE.md, "Resume and atomic output")
  // A segment is also closed once it has taken this much wall-clock time (0: by frames only).
  int segment_max_seconds = 60;
  bool quiet = false;
  bool progress_json = false;
  bool recursive = false;
  bool no_space_check = false;
  // A damaged input frame (one the decoder had to conceal errors in) fails the job (exit 1)
  // instead of a warning per frame (docs/FIDELITY.md, "Damaged sources").
  bool strict = false;
};

enum class SettingKind { kBool, kInt, kDouble, kString, kPath, kChoice, kIntOrAuto };

struct SettingSpec {
  std::string key;         // snake_case config key; the flag is "--" + key with '_' -> '-'
  std::string short_flag;  // "-o", "-y" or empty
  SettingKind kind;
  std::string help;
  std::vector<std::string> choices = {};  // kChoice
  long min = 0, max = 0;                  // kInt / kIntOrAuto range (inclusive)
};

// The table of every setting, in --help order.
const std::vector<SettingSpec>& setting_specs();
const SettingSpec* find_setting(const std::string& key);
std::string flag_name(const SettingSpec& spec);  // "--hash-size"

// The `origin` of values given as command-line flags: their errors name the flag
// ("--hash-size"), those of a config file the key ('hash_size').
inline constexpr const char* kCommandLine = "command line";

// Sets `key` from its text form ("true"/"false" for booleans, "auto" where allowed).
// Throws UsageError naming `origin` (the config file or kCommandLine), the setting, the value
// and what is allowed.
void set_setting(Settings& settings, const std::string& key, const std::string& value,
                 const std::string& origin);
// The current value of `key` as text, in the form set_setting reads back.
std::string get_setting(const Settings& settings, const std::string& key);
// The default of `key` as a user reads it (--help): "auto", "on"/"off", "18", or what a
// value decided later stands for ("2, or a model file's own", "fp16 on CUDA, fp32 on
// the CPU", the detector's own thresholds).
std::string default_text(const std::string& key);

// Checks what no single setting can: the crf against the encoder's range. The scale is
// checked against the model by make_upscaler. Throws UsageError. run_job and run_batch call
// it before any work.
void validate_settings(const Settings& settings);

// Applies a TOML file; unknown keys and bad values are UsageErrors naming the file and key.
void apply_config_file(Settings& settings, const std::filesystem::path& file);
// `upframe.toml` in the working folder, if present.
std::optional<std::filesystem::path> default_config_file();

}  // namespace upframe
