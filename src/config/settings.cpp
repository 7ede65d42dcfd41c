#include <charconv>
#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <variant>

#include <toml++/toml.h>

#include "upframe/config.hpp"
#include "upframe/dedup/detector.hpp"
#include "upframe/error.hpp"

namespace upframe {

namespace {

using Member = std::variant<bool Settings::*, int Settings::*, double Settings::*,
                            std::string Settings::*, std::filesystem::path Settings::*>;

struct Entry {
  SettingSpec spec;
  Member member;
  // The default as --help shows it where the stored default is a stand-in ("" or 0 for
  // "decided later"); empty: the stored default's own text.
  std::string shown_default = {};
};

const std::vector<Entry>& entries() {
  using K = SettingKind;
  static const std::vector<Entry> table = {
      {{"output", "-o", K::kPath, "output file or folder"},
       &Settings::output,
       "NAME_x{scale}.EXT beside the input"},
      {{"overwrite", "-y", K::kBool, "overwrite an existing output"}, &Settings::overwrite},
      {{"scale",
        "",
        K::kInt,
        "upscale factor: one the model has (realesr-animevideov3: 2, 3, 4; "
        "realesr-general-x4v3: 4; a model file: its own), any for lanczos and bicubic",
        {},
        1,
        16},
       &Settings::scale,
       "2, or a model file's own"},
      {{"model", "", K::kString,
        "realesr-animevideov3 (anime / video), realesr-general-x4v3 (photos), lanczos, bicubic, "
        "a NAME in a models folder, or a model file: .param, .pth, .safetensors, .onnx"},
       &Settings::model},
      {{"models_dir", "", K::kPath,
        "a folder of your own models, searched first for a --model NAME (then the shipped "
        "models, then $XDG_DATA_HOME/upframe/models)"},
       &Settings::models_dir,
       "none"},
      {{"device", "", K::kChoice, "where to run", {"auto", "cpu", "cuda"}}, &Settings::device},
      {{"precision",
        "",
        K::kChoice,
        "network precision (auto: fp16 on CUDA, bf16 on a CPU with avx512_bf16 or AMX, else "
        "fp32)",
        {"", "fp32", "bf16", "fp16", "auto"}},
       &Settings::precision},
      {{"tile", "", K::kIntOrAuto, "tile side in input pixels (0: no tiling)", {}, 0, 1 << 16},
       &Settings::tile},
      {{"workers", "", K::kIntOrAuto, "upscale workers", {}, 1, 256}, &Settings::workers},
      {{"encoder",
        "",
        K::kChoice,
        "video encoder",
        {"auto", "libx264", "libx265", "libsvtav1", "libaom-av1", "libvpx-vp9", "ffv1",
         "h264_nvenc", "hevc_nvenc"}},
       &Settings::encoder},
      {{"crf",
        "",
        K::kInt,
        "constant-quality value (crf, or cq for NVENC; ignored by ffv1)",
        {},
        0,
        63},
       &Settings::crf},
      {{"format", "", K::kChoice, "frames-folder or image format", {"", "png", "jpg", "webp"}},
       &Settings::format,
       "the output's extension"},
      {{"quality", "", K::kInt, "jpg/webp quality", {}, 1, 100}, &Settings::quality},
      {{"stats", "", K::kPath, "write the stats JSON to FILE"}, &Settings::stats, "none"},
      {{"parallel", "", K::kBool, "allow the streamed parallel pipeline"}, &Settings::parallel},
      {{"skip_duplicates", "", K::kBool, "upscale each duplicate frame only once"},
       &Settings::skip_duplicates},
      {{"reuse_tiles", "", K::kBool,
        "with skip_duplicates: keep the upscaled tiles a unique frame did not change"},
       &Settings::reuse_tiles},
      {{"dedup", "", K::kChoice, "duplicate scope", {"consecutive", "global"}}, &Settings::dedup},
      {{"hash_size", "", K::kChoice, "perceptual hash side", {"8", "16", "32"}},
       &Settings::hash_size},
      {{"hash_threshold", "", K::kInt, "Hamming distance counted as a hash match", {}, 0, 1024},
       &Settings::hash_threshold},
      {{"dedup_window", "", K::kInt, "unique frames compared with in global scope", {}, 1, 4096},
       &Settings::dedup_window},
      {{"dedup_max_mean_diff", "", K::kDouble,
        "confirmation: largest frame mean |difference| (8-bit levels; negative: default)"},
       &Settings::dedup_max_mean_diff},
      {{"dedup_max_signed_mean_diff", "", K::kDouble,
        "confirmation: largest |mean difference| (8-bit levels; negative: default)"},
       &Settings::dedup_max_signed_mean_diff},
      {{"dedup_max_block_diff", "", K::kDouble,
        "confirmation: largest 8x8-block mean |difference| (8-bit levels; negative: default)"},
       &Settings::dedup_max_block_diff},
      {{"dedup_max_motion", "", K::kDouble,
        "confirmation: largest global motion |shift|*sqrt(R^2) in pixels (negative: default)"},
       &Settings::dedup_max_motion},
      {{"dedup_max_local_motion", "", K::kDouble,
        "confirmation: largest local motion in a 16x16 window, pixels (negative: default)"},
       &Settings::dedup_max_local_motion},
      {{"enable_gpu_pipeline", "", K::kBool, "allow the streamed pipeline mode"},
       &Settings::enable_gpu_pipeline},
      {{"pipeline_min_frames", "", K::kInt, "fewest frames for the pipeline mode", {}, 1, 1 << 30},
       &Settings::pipeline_min_frames},
      {{"preload_frames",
        "",
        K::kInt,
        "decoded unique frames waiting ahead of the upscaler",
        {},
        1,
        256},
       &Settings::preload_frames},
      {{"resume", "", K::kBool, "continue an interrupted job"}, &Settings::resume},
      {{"segment_frames",
        "",
        K::kInt,
        "frames per video segment: the unit an interrupted job resumes from",
        {},
        1,
        1 << 30},
       &Settings::segment_frames},
      {{"segment_max_seconds",
        "",
        K::kInt,
        "also close a video segment once it has taken this many seconds (0: by frames only)",
        {},
        0,
        86400},
       &Settings::segment_max_seconds},
      {{"quiet", "", K::kBool, "print errors only"}, &Settings::quiet},
      {{"progress_json", "", K::kBool, "progress as one JSON object a line on stdout"},
       &Settings::progress_json},
      {{"recursive", "", K::kBool, "descend into sub-folders of a folder input"},
       &Settings::recursive},
      {{"no_space_check", "", K::kBool, "skip the free-disk-space pre-flight check"},
       &Settings::no_space_check},
      {{"strict", "", K::kBool,
        "fail (exit 1) on a damaged input frame instead of a warning naming it"},
       &Settings::strict},
  };
  return table;
}

const Entry* find_entry(const std::string& key) {
  for (const Entry& e : entries())
    if (e.spec.key == key) return &e;
  return nullptr;
}

// Names the setting as the user wrote it: the flag on the command line, the key in a file.
std::string setting_name(const std::string& origin, const SettingSpec& spec) {
  return origin == kCommandLine ? flag_name(spec) : "'" + spec.key + "'";
}

[[noreturn]] void bad_value(const std::string& origin, const SettingSpec& spec,
                            const std::string& why) {
  throw UsageError(origin, "bad value for " + setting_name(origin, spec) + ": " + why);
}

// Shortest text that reads back as the same number ("4.5", "-1", "0.095").
std::string number_text(double v) {
  std::ostringstream ss;
  for (int digits = 1; digits <= 17; ++digits) {
    ss.str({});
    ss.precision(digits);
    ss << v;
    if (std::strtod(ss.str().c_str(), nullptr) == v) break;
  }
  return ss.str();
}

std::optional<long> parse_long(const std::string& text) {
  long value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || text.empty()) return std::nullopt;
  return value;
}

}  // namespace

const std::vector<SettingSpec>& setting_specs() {
  static const std::vector<SettingSpec> specs = [] {
    std::vector<SettingSpec> out;
    for (const Entry& e : entries()) out.push_back(e.spec);
    return out;
  }();
  return specs;
}

const SettingSpec* find_setting(const std::string& key) {
  const Entry* e = find_entry(key);
  return e ? &e->spec : nullptr;
}

std::string flag_name(const SettingSpec& spec) {
  std::string flag = "--" + spec.key;
  for (char& c : flag)
    if (c == '_') c = '-';
  return flag;
}

void set_setting(Settings& settings, const std::string& key, const std::string& value,
                 const std::string& origin) {
  const Entry* e = find_entry(key);
  if (!e) throw UsageError(origin, "unknown setting '" + key + "'");
  const SettingSpec& spec = e->spec;
  auto in_range = [&](long v) {
    if (v < spec.min || v > spec.max)
      bad_value(origin, spec,
                "'" + value + "' is outside " + std::to_string(spec.min) + ".." +
                    std::to_string(spec.max) +
                    (spec.kind == SettingKind::kIntOrAuto ? " (or auto)" : ""));
    return static_cast<int>(v);
  };
  switch (spec.kind) {
    case SettingKind::kBool:
      if (value == "true" || value == "1")
        settings.*std::get<bool Settings::*>(e->member) = true;
      else if (value == "false" || value == "0")
        settings.*std::get<bool Settings::*>(e->member) = false;
      else
        bad_value(origin, spec, "'" + value + "' is not true or false");
      return;
    case SettingKind::kInt: {
      auto v = parse_long(value);
      if (!v) bad_value(origin, spec, "'" + value + "' is not a whole number");
      settings.*std::get<int Settings::*>(e->member) = in_range(*v);
      return;
    }
    case SettingKind::kIntOrAuto: {
      int& field = settings.*std::get<int Settings::*>(e->member);
      if (value == "auto") {
        field = key == "tile" ? -1 : 0;
        return;
      }
      auto v = parse_long(value);
      if (!v) bad_value(origin, spec, "'" + value + "' is neither auto nor a whole number");
      field = in_range(*v);
      return;
    }
    case SettingKind::kDouble: {
      char* end = nullptr;
      double v = std::strtod(value.c_str(), &end);
      if (value.empty() || end != value.c_str() + value.size() || !std::isfinite(v))
        bad_value(origin, spec, "'" + value + "' is not a number");
      settings.*std::get<double Settings::*>(e->member) = v;
      return;
    }
    case SettingKind::kChoice: {
      bool ok = false;
      std::string allowed;
      for (const std::string& c : spec.choices) {
        if (c == value) ok = true;
        if (!c.empty()) allowed += (allowed.empty() ? "" : ", ") + c;
      }
      if (!ok || value.empty()) bad_value(origin, spec, "'" + value + "' is not one of " + allowed);
      if (auto* int_member = std::get_if<int Settings::*>(&e->member))
        settings.** int_member = static_cast<int>(*parse_long(value));
      else
        settings.*std::get<std::string Settings::*>(e->member) = value;
      return;
    }
    case SettingKind::kString:
      if (value.empty()) bad_value(origin, spec, "empty");
      settings.*std::get<std::string Settings::*>(e->member) = value;
      return;
    case SettingKind::kPath:
      if (value.empty()) bad_value(origin, spec, "empty path");
      settings.*std::get<std::filesystem::path Settings::*>(e->member) = value;
      return;
  }
}

std::string get_setting(const Settings& settings, const std::string& key) {
  const Entry* e = find_entry(key);
  if (!e) return {};
  if (e->spec.kind == SettingKind::kIntOrAuto) {
    int v = settings.*std::get<int Settings::*>(e->member);
    return (key == "tile" ? v < 0 : v == 0) ? "auto" : std::to_string(v);
  }
  return std::visit(
      [&](auto member) -> std::string {
        const auto& v = settings.*member;
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, bool>)
          return v ? "true" : "false";
        else if constexpr (std::is_same_v<T, int>)
          return std::to_string(v);
        else if constexpr (std::is_same_v<T, double>)
          return number_text(v);
        else if constexpr (std::is_same_v<T, std::filesystem::path>)
          return v.string();
        else
          return v;
      },
      e->member);
}

std::string default_text(const std::string& key) {
  const Entry* e = find_entry(key);
  if (!e) return {};
  if (!e->shown_default.empty()) return e->shown_default;
  if (e->spec.kind == SettingKind::kBool)
    return get_setting(Settings{}, key) == "true" ? "on" : "off";
  // The confirmation thresholds: a negative setting stands for the detector's own value.
  const dedup::Thresholds t = dedup::default_thresholds();
  const std::map<std::string, double> detector = {
      {"dedup_max_mean_diff", t.max_mean_abs_diff},
      {"dedup_max_signed_mean_diff", t.max_abs_signed_mean_diff},
      {"dedup_max_block_diff", t.max_block_mean_abs_diff},
      {"dedup_max_motion", t.max_motion},
      {"dedup_max_local_motion", t.max_local_motion}};
  if (auto it = detector.find(key); it != detector.end()) return number_text(it->second);
  return get_setting(Settings{}, key);
}

void validate_settings(const Settings& s) {
  // What one setting alone cannot say. x264, x265 and NVENC's cq stop at 51 (and "auto" picks
  // one of them); the range of the crf setting itself is that of libsvtav1. ffv1 ignores crf.
  static const std::set<std::string> crf_to_51 = {"auto", "libx264", "libx265", "h264_nvenc",
                                                  "hevc_nvenc"};
  if (s.crf > 51 && crf_to_51.count(s.encoder))
    throw UsageError({}, "bad value for crf: " + std::to_string(s.crf) +
                             " is outside 0..51, the range of encoder " + s.encoder);
}

void apply_config_file(Settings& settings, const std::filesystem::path& file) {
  const std::string origin = file.string();
  if (!std::filesystem::exists(file)) throw UsageError(origin, "config file not found");
  toml::table table;
  try {
    table = toml::parse_file(file.string());
  } catch (const toml::parse_error& err) {
    throw UsageError(origin, "line " + std::to_string(err.source().begin.line) + ": " +
                                 std::string(err.description()));
  }
  for (auto&& [key_view, node] : table) {
    const std::string key(key_view.str());
    if (!find_entry(key)) throw UsageError(origin, "unknown key '" + key + "'");
    std::string text;
    if (auto b = node.value<bool>(); b && node.is_boolean())
      text = *b ? "true" : "false";
    else if (node.is_integer())
      text = std::to_string(*node.value<int64_t>());
    else if (node.is_floating_point()) {
      std::ostringstream ss;
      ss << *node.value<double>();
      text = ss.str();
    } else if (node.is_string())
      text = *node.value<std::string>();
    else
      throw UsageError(origin, "bad value for '" + key + "': expected a boolean, number or string");
    // A TOML boolean for a non-boolean key (or the reverse) is a type error, not a coercion.
    const SettingKind kind = find_entry(key)->spec.kind;
    if ((kind == SettingKind::kBool) != node.is_boolean())
      throw UsageError(origin, "bad value for '" + key + "': wrong type");
    set_setting(settings, key, text, origin);
  }
}

std::optional<std::filesystem::path> default_config_file() {
  std::filesystem::path p = "upframe.toml";
  if (std::filesystem::exists(p)) return p;
  return std::nullopt;
}

}  // namespace upframe
