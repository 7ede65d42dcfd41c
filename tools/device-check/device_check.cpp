// upframe_device_check: the one-shot GPU check (docs/GPU.md "The device-check kit"). Built with
// nvcc, cuDNN and the C++ library alone (tools/device-check/kit.cmake), it runs every check this
// GPU machine can run against the CPU results carried in tools/device-check/refs, one line per
// check and a summary, and writes a JSON report. With --cpu-dry-run it runs only what needs no
// device: reading the models and the reference files, building each check's graph and comparing
// shapes, and the host halves of the dedup and colour checks; every GPU step is reported as
// skipped with the reason.
#include <cuda_runtime_api.h>
#include <cudnn.h>
#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "dedup/cuda/device_dedup.hpp"
#include "dedup/kernels.hpp"
#include "device-check/nvdec_decode.hpp"
#include "device-check/op_catalogue.hpp"
#include "device-check/ref_archive.hpp"
#include "device-check/ref_values.hpp"
#include "nn/graph.hpp"
#include "nn/reader.hpp"
#include "nn/subgraph.hpp"
#include "upframe/cuda_check.hpp"
#include "upframe/dedup/hash.hpp"
#include "upframe/error.hpp"
#include "upframe/nn/cuda_executor.hpp"
#include "upframe/nn/memory_policy.hpp"
#include "upframe/nn/model.hpp"
#include "upframe/nn/tiling.hpp"
#include "upframe/tile_mask.hpp"
#include "upscale/cuda/device_colour.hpp"
#include "upscale/cuda/device_colour_math.hpp"

namespace fs = std::filesystem;
namespace nn = upframe::nn;
namespace dedup = upframe::dedup;
namespace colour = upframe::colour;
using upframe::device_check::RefArchive;
using namespace upframe::device_check;  // ref_values.hpp: the arrays both ends share
using Clock = std::chrono::steady_clock;

namespace {

// --- options and the report -----------------------------------------------------------------

struct Options {
  fs::path source = ".";
  fs::path refs;
  fs::path json;
  bool dry_run = false;
  std::vector<std::string> sections = {"device",      "ops",    "golden", "user_models", "dedup",
                                       "dedup_speed", "colour", "memory", "throughput",  "nvdec"};
  double seconds = 1.0;  // per throughput configuration
  int max_streams = 4;
};

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

std::string num(double v, int digits = 4) {
  if (!std::isfinite(v)) return v > 0 ? "inf" : "nan";
  std::ostringstream s;
  s.precision(digits);
  s << v;
  return s.str();
}

std::string json_number(double v) { return std::isfinite(v) ? num(v, 8) : "null"; }

struct Check {
  std::string section, name, status, detail;
  std::vector<std::pair<std::string, double>> figures;
};

class Report {
 public:
  // `json`: rewritten after every check, so a crash or a kill keeps what finished.
  // `host_halves_skip`: a run meant for a GPU found none; the host halves that passed are shown
  // as skipped (the run did not check what it was for).
  Report(fs::path json, bool dry_run, bool host_halves_skip)
      : json_(std::move(json)), dry_run_(dry_run), host_halves_skip_(host_halves_skip) {}

  void add(const std::string& section, const std::string& name, std::string status,
           const std::string& detail, std::vector<std::pair<std::string, double>> figures = {}) {
    if (host_halves_skip_ && status == "pass" && name.find(" (host half)") != std::string::npos)
      status = "skip";
    std::string tag = status;
    for (char& c : tag) c = char(std::toupper(static_cast<unsigned char>(c)));
    std::printf("%-4s %-10s %s: %s\n", tag.c_str(), section.c_str(), name.c_str(), detail.c_str());
    std::fflush(stdout);
    checks_.push_back({section, name, status, detail, std::move(figures)});
    write_json();
  }
  int count(const std::string& status) const {
    return int(std::count_if(checks_.begin(), checks_.end(),
                             [&](const Check& c) { return c.status == status; }));
  }
  void set_device(std::string json_object) { device_json_ = std::move(json_object); }
  void set_seconds(double seconds) { seconds_ = seconds; }

  // Written to a temporary file, then renamed: a kill mid-write leaves the previous report.
  void write_json() const {
    if (json_.empty()) return;
    const fs::path temporary = fs::path(json_.string() + ".tmp");
    {
      std::ofstream out(temporary);
      out << "{\n  \"tool\": \"upframe_device_check\",\n  \"dry_run\": "
          << (dry_run_ ? "true" : "false") << ",\n  \"device\": " << device_json_
          << ",\n  \"seconds\": " << json_number(seconds_)
          << ",\n  \"summary\": {\"pass\": " << count("pass") << ", \"fail\": " << count("fail")
          << ", \"skip\": " << count("skip") << "},\n  \"checks\": [\n";
      for (size_t i = 0; i < checks_.size(); ++i) {
        const Check& c = checks_[i];
        out << "    {\"section\": \"" << json_escape(c.section) << "\", \"name\": \""
            << json_escape(c.name) << "\", \"status\": \"" << c.status << "\", \"detail\": \""
            << json_escape(c.detail) << "\"";
        if (!c.figures.empty()) {
          out << ", \"figures\": {";
          for (size_t k = 0; k < c.figures.size(); ++k)
            out << (k ? ", " : "") << "\"" << json_escape(c.figures[k].first)
                << "\": " << json_number(c.figures[k].second);
          out << "}";
        }
        out << "}" << (i + 1 < checks_.size() ? "," : "") << "\n";
      }
      out << "  ]\n}\n";
    }
    std::error_code ignored;
    fs::rename(temporary, json_, ignored);
  }

 private:
  std::vector<Check> checks_;
  fs::path json_;
  bool dry_run_;
  bool host_halves_skip_;
  double seconds_ = 0;
  std::string device_json_ = "null";
};

// Runs one check; an exception is that check's failure, never the end of the run.
void guarded(Report& report, const std::string& section, const std::string& name,
             const std::function<void()>& body) {
  try {
    body();
  } catch (const std::exception& e) {
    report.add(section, name, "fail", e.what());
  }
}

// --- the device ------------------------------------------------------------------------------

struct Device {
  bool available = false;
  std::string reason;  // why not
  cudaDeviceProp props{};
  int clock_khz = 0;
  size_t free_bytes = 0, total_bytes = 0;
  int cudnn_version = 0;

  // Nominal dense peak (TFLOP/s) from SM count x clock x per-SM rate of the architecture: fp16
  // tensor cores (fp32 accumulate) and plain fp32 FMA. 0 where the architecture is not known.
  double peak_tflops(nn::Precision p) const {
    const int cc = props.major * 10 + props.minor;
    int per_sm_fma = 0;
    if (p == nn::Precision::kFp16)
      per_sm_fma = cc >= 90 ? 2048 : cc == 80 ? 1024 : cc >= 75 ? 512 : 0;
    else
      per_sm_fma = cc == 80 || cc == 75 ? 64 : cc >= 75 ? 128 : 0;
    return 2.0 * per_sm_fma * props.multiProcessorCount * clock_khz * 1e3 / 1e12;
  }
};

Device probe_device(bool dry_run) {
  Device d;
  d.cudnn_version = 0;
  if (dry_run) {
    d.reason = "--cpu-dry-run";
    return d;
  }
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    d.reason = std::string("no usable CUDA driver (") + cudaGetErrorString(err) + ")";
    return d;
  }
  if (count == 0) {
    d.reason = "no CUDA device";
    return d;
  }
  if ((err = cudaGetDeviceProperties(&d.props, 0)) != cudaSuccess ||
      (err = cudaDeviceGetAttribute(&d.clock_khz, cudaDevAttrClockRate, 0)) != cudaSuccess ||
      (err = cudaMemGetInfo(&d.free_bytes, &d.total_bytes)) != cudaSuccess) {
    d.reason = std::string("device 0 cannot be queried (") + cudaGetErrorString(err) + ")";
    return d;
  }
  d.available = true;
  return d;
}

// The library's check (upframe/cuda_check.hpp): throws "device check: WHAT failed: ..." and clears
// a non-sticky error so the next check starts clean.
void check(cudaError_t err, const char* what) {
  upframe::check_cuda(err, "device check", what, "");
}

// A device allocation (a plain or a pitched one), freed on scope exit.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes) { check(cudaMalloc(&ptr_, bytes), "cudaMalloc"); }
  DeviceBuffer(size_t row_bytes, size_t rows) {
    check(cudaMallocPitch(&ptr_, &pitch_, row_bytes, rows), "cudaMallocPitch");
  }
  ~DeviceBuffer() { cudaFree(ptr_); }
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), pitch_(o.pitch_) { o.ptr_ = nullptr; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(ptr_, o.ptr_);
    std::swap(pitch_, o.pitch_);
    return *this;
  }
  template <class T = void>
  T* get() const {
    return static_cast<T*>(ptr_);
  }
  size_t pitch() const { return pitch_; }

 private:
  void* ptr_ = nullptr;
  size_t pitch_ = 0;
};

// --- tensors and images ----------------------------------------------------------------------

nn::Tensor tensor_of(const RefArchive& a, const std::string& name) {
  const auto& array = a.at(name);
  if (array.dims.size() != 3) throw std::runtime_error(name + ": not a c x h x w tensor");
  nn::Tensor t(int(array.dims[0]), int(array.dims[1]), int(array.dims[2]));
  t.data = array.values<float>();
  return t;
}

std::string shape_text(int c, int h, int w) {
  return std::to_string(c) + "x" + std::to_string(h) + "x" + std::to_string(w);
}

struct MaxDifference {
  double max_abs = 0;  // largest |a - b|
  double max_ref = 0;  // largest |reference|
};

MaxDifference max_difference(const nn::Tensor& got, const nn::Tensor& ref) {
  if (got.channels != ref.channels || got.height != ref.height || got.width != ref.width)
    throw std::runtime_error("result " + shape_text(got.channels, got.height, got.width) +
                             " but reference " + shape_text(ref.channels, ref.height, ref.width));
  MaxDifference d;
  for (size_t i = 0; i < ref.data.size(); ++i) {
    d.max_abs = std::max(d.max_abs, double(std::abs(got.data[i] - ref.data[i])));
    d.max_ref = std::max(d.max_ref, double(std::abs(ref.data[i])));
  }
  return d;
}

struct ImageComparison {
  double psnr = 0;
  int max_levels = 0;
};

ImageComparison compare_rgb8(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  if (a.size() != b.size()) throw std::runtime_error("images of different sizes");
  ImageComparison r;
  double sse = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const int d = int(a[i]) - int(b[i]);
    sse += double(d) * d;
    r.max_levels = std::max(r.max_levels, std::abs(d));
  }
  const double mse = sse / double(a.size());
  r.psnr = mse == 0 ? 99.0 : 10 * std::log10(255.0 * 255.0 / mse);
  return r;
}

std::string string_of(const RefArchive& a, const std::string& name) {
  const auto bytes = a.get<uint8_t>(name);
  return std::string(bytes.begin(), bytes.end());
}

// Keys "<prefix><middle>/<suffix>" -> the middles, in order.
std::vector<std::string> keys_between(const RefArchive& a, const std::string& prefix,
                                      const std::string& suffix) {
  std::vector<std::string> out;
  for (const auto& [name, array] : a.arrays()) {
    (void)array;
    if (name.rfind(prefix, 0) == 0 && name.size() > prefix.size() + suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      out.push_back(name.substr(prefix.size(), name.size() - prefix.size() - suffix.size()));
  }
  return out;
}

std::shared_ptr<const nn::Model> load_model(const Options& o, const std::string& param) {
  const fs::path p = o.source / param;
  return nn::Model::load(p, fs::path(p).replace_extension(".bin"));
}

const nn::Precision kPrecisions[] = {nn::Precision::kFp32, nn::Precision::kFp16};

// Without a device (--cpu-dry-run) a check runs the part it can on the host and says so.
const std::string kHostHalf = " (host half)";

// --- 1. every op of every shipped model alone, and the op catalogue, CUDA vs the CPU executor ---

// fp32: reassociation only; fp16: storage rounds each value to 11 significant bits. Relative to
// the reference's magnitude (at least 1): a 64-channel 3x3 convolution sums 576 products.
constexpr double kOpTolerance[] = {1e-4, 2e-2};

void check_op_cases(const Device& dev, const RefArchive& refs, Report& report);

void check_ops(const Options& o, const Device& dev, Report& report) {
  const RefArchive refs = RefArchive::load((o.refs / "ops.ref").string());
  for (const std::string& stem : keys_between(refs, "models/", "/param")) {
    auto model = load_model(o, string_of(refs, "models/" + stem + "/param"));
    const nn::Graph& g = model->graph();
    const auto patch = refs.get<int64_t>("models/" + stem + "/patch");
    const auto shapes = g.infer_shapes(nn::Shape{3, 3, int(patch[0]), int(patch[1])});
    const auto indices = keys_between(refs, "ops/" + stem + "/", "/in");
    if (int64_t(indices.size()) != refs.get<int64_t>("models/" + stem + "/op_count")[0])
      throw std::runtime_error("ops.ref: op count of " + stem + " does not match");
    for (const std::string& index : indices) {
      const std::string prefix = "ops/" + stem + "/" + index + "/";
      const std::string layer = string_of(refs, prefix + "layer");
      const std::string name = stem + " #" + index + " " + layer;
      guarded(report, "ops", name, [&] {
        const int k = std::stoi(index);
        if (std::string(nn::op_type_name(g.ops.at(k).type)) + " " + g.ops[k].name != layer)
          throw std::runtime_error("the model's op " + index + " is not the reference's " + layer);
        const nn::Tensor in = tensor_of(refs, prefix + "in");
        const nn::Tensor ref = tensor_of(refs, prefix + "out");
        nn::Graph part = nn::single_op_graph(g, k, shapes);
        const nn::Shape out_shape =
            part.infer_shapes(nn::Shape{3, in.channels, in.height, in.width})[part.output_blob];
        if (out_shape.c != ref.channels || out_shape.h != ref.height || out_shape.w != ref.width)
          throw std::runtime_error(
              "the graph gives " + shape_text(out_shape.c, out_shape.h, out_shape.w) +
              ", the reference has " + shape_text(ref.channels, ref.height, ref.width));
        const std::string shapes_text = shape_text(in.channels, in.height, in.width) + " -> " +
                                        shape_text(ref.channels, ref.height, ref.width);
        if (!dev.available) {
          report.add("ops", name + kHostHalf, "pass",
                     shapes_text + ", graph and reference agree; GPU half skipped: " + dev.reason);
          return;
        }
        auto part_model = nn::Model::from_graph(std::move(part), name);
        std::string detail = shapes_text;
        bool ok = true;
        std::vector<std::pair<std::string, double>> figures;
        for (int p = 0; p < 2; ++p) {
          const MaxDifference d =
              max_difference(nn::make_cuda_executor(part_model, kPrecisions[p])->run(in), ref);
          const double limit = kOpTolerance[p] * std::max(1.0, d.max_ref);
          ok = ok && d.max_abs <= limit;
          detail += std::string(", ") + nn::precision_name(kPrecisions[p]) + " max diff " +
                    num(d.max_abs, 3) + " (limit " + num(limit, 3) + ")";
          figures.emplace_back(std::string(nn::precision_name(kPrecisions[p])) + "_max_diff",
                               d.max_abs);
        }
        report.add("ops", name, ok ? "pass" : "fail", detail, figures);
      });
    }
  }
  check_op_cases(dev, refs, report);
}

// The op catalogue (tests/nn/op_cases.hpp, built into the kit) on CUDA against the CPU outputs
// ops.ref carries, with the limits of tests/cuda/nn_op_cases_test.cpp: fp32 within 1e-4, fp16
// within the case's own tolerance for fp16 storage. A case missing from ops.ref, or whose
// input differs from the one the CPU ran, means the references are older than the catalogue.
void check_op_cases(const Device& dev, const RefArchive& refs, Report& report) {
  const auto cases = upframe::test::op_cases::all_cases();
  if (int64_t(keys_between(refs, "cases/", "/out").size()) != int64_t(cases.size()))
    throw std::runtime_error("ops.ref: " + std::to_string(cases.size()) +
                             " catalogue cases, a different number of references (regenerate "
                             "them with build/upframe_device_refs tools/device-check/refs)");
  for (const upframe::test::op_cases::OpCase& c : cases) {
    const std::string name = "case " + c.name;
    guarded(report, "ops", name, [&] {
      if (!refs.has(op_case_key(c, "out")))
        throw std::runtime_error("ops.ref has no reference for this case");
      const nn::Tensor ref_in = tensor_of(refs, op_case_key(c, "in"));
      const nn::Tensor ref = tensor_of(refs, op_case_key(c, "out"));
      if (max_difference(c.input, ref_in).max_abs != 0)
        throw std::runtime_error("the case's input is not the one ops.ref's output was made from");
      auto model = op_case_model(c);
      const nn::Shape out_shape = model->graph().infer_shapes(nn::Shape{
          3, c.input.channels, c.input.height, c.input.width})[model->graph().output_blob];
      if (out_shape.c != ref.channels || out_shape.h != ref.height || out_shape.w != ref.width)
        throw std::runtime_error(
            "the graph gives " + shape_text(out_shape.c, out_shape.h, out_shape.w) +
            ", the reference has " + shape_text(ref.channels, ref.height, ref.width));
      const std::string shapes_text = shape_text(c.input.channels, c.input.height, c.input.width) +
                                      " -> " + shape_text(ref.channels, ref.height, ref.width);
      if (!dev.available) {
        report.add("ops", name + kHostHalf, "pass",
                   shapes_text +
                       ", case built, input and graph agree with the reference; GPU "
                       "half skipped: " +
                       dev.reason);
        return;
      }
      const double limits[] = {1e-4, c.fp16_tolerance};
      std::string detail = shapes_text;
      bool ok = true;
      std::vector<std::pair<std::string, double>> figures;
      for (int p = 0; p < 2; ++p) {
        const MaxDifference d =
            max_difference(nn::make_cuda_executor(model, kPrecisions[p])->run(c.input), ref);
        ok = ok && d.max_abs <= limits[p];
        detail += std::string(", ") + nn::precision_name(kPrecisions[p]) + " max diff " +
                  num(d.max_abs, 3) + " (limit " + num(limits[p], 3) + ")";
        figures.emplace_back(std::string(nn::precision_name(kPrecisions[p])) + "_max_diff",
                             d.max_abs);
      }
      report.add("ops", name, ok ? "pass" : "fail", detail, figures);
    });
  }
}

// --- 2. whole models on the golden inputs; tiled equals untiled --------------------------------

void check_golden(const Options& o, const Device& dev, Report& report) {
  const RefArchive refs = RefArchive::load((o.refs / "golden.ref").string());
  for (const std::string& name : keys_between(refs, "golden/", "/param")) {
    const std::string prefix = "golden/" + name + "/";
    auto model = load_model(o, string_of(refs, prefix + "param"));
    const nn::ModelInfo& info = model->info();
    const auto& in_array = refs.at(prefix + "input");
    const auto& ref_array = refs.at(prefix + "reference");
    const int h = int(in_array.dims[0]), w = int(in_array.dims[1]);
    const std::string kind = string_of(refs, prefix + "reference_kind");
    guarded(report, "golden", name + kHostHalf, [&] {
      if (ref_array.dims[0] != int64_t(h) * info.scale ||
          ref_array.dims[1] != int64_t(w) * info.scale)
        throw std::runtime_error("the reference is not the input times the model's scale " +
                                 std::to_string(info.scale));
      if (!dev.available)
        report.add("golden", name + kHostHalf, "pass",
                   std::to_string(w) + "x" + std::to_string(h) + " x" + std::to_string(info.scale) +
                       " against " + kind +
                       "; the GPU halves (fp32 >= 50 dB and <= 2 levels, "
                       "fp16 >= 40 dB, tiled = untiled) skipped: " +
                       dev.reason);
    });
    const nn::Tensor input = rgb8_to_tensor(in_array.values<uint8_t>(), w, 0, 0, h, w);
    const auto reference = ref_array.values<uint8_t>();
    for (nn::Precision p : kPrecisions) {
      const std::string check_name = name + " " + nn::precision_name(p) + " vs " + kind;
      guarded(report, "golden", check_name, [&] {
        if (!dev.available) return;
        const double min_psnr = p == nn::Precision::kFp32 ? 50.0 : 40.0;
        const std::string need = "needs >= " + num(min_psnr, 3) + " dB" +
                                 (p == nn::Precision::kFp32 ? " and <= 2 levels" : "");
        auto exec = nn::make_cuda_executor(model, p);
        const nn::Tensor whole = exec->run(input);
        const ImageComparison c = compare_rgb8(tensor_to_rgb8(whole), reference);
        const bool ok = c.psnr >= min_psnr && (p != nn::Precision::kFp32 || c.max_levels <= 2);
        report.add("golden", check_name, ok ? "pass" : "fail",
                   "PSNR " + num(c.psnr, 4) + " dB, max " + std::to_string(c.max_levels) +
                       " levels (" + need + ")",
                   {{"psnr_db", c.psnr}, {"max_levels", c.max_levels}});
        // Tiles of 64 with the model's receptive radius as overlap (the pipeline's choice).
        const std::string tiled_check = name + " " + nn::precision_name(p) + " tiled = untiled";
        const nn::Tensor tiled =
            nn::run_tiled(*exec, input, 64, info.receptive_radius, info.scale, info.tile_alignment);
        if (p == nn::Precision::kFp32) {
          const MaxDifference d = max_difference(tiled, whole);
          report.add("golden", tiled_check, d.max_abs <= 1e-3 ? "pass" : "fail",
                     "tiles of 64, max diff " + num(d.max_abs, 3) +
                         " (limit 1e-3: other cuDNN "
                         "algorithms per shape reassociate sums)",
                     {{"max_diff", d.max_abs}});
        } else {
          const ImageComparison t = compare_rgb8(tensor_to_rgb8(tiled), tensor_to_rgb8(whole));
          report.add("golden", tiled_check, t.psnr >= 50 ? "pass" : "fail",
                     "tiles of 64, PSNR " + num(t.psnr, 4) + " dB vs untiled (needs >= 50)",
                     {{"psnr_db", t.psnr}});
        }
        // Tile reuse on CUDA: the changed tiles' windows (every other tile) run as the
        // pipeline's workers run them; the rest is taken from the untiled result, as the save
        // stage takes the previous frame's. Equal to untiled: no seam.
        const std::string reuse_check = name + " " + nn::precision_name(p) + " reuse windows";
        upframe::TileMask mask(input.width, input.height, 64);
        for (size_t t = 0; t < mask.changed.size(); ++t) mask.changed[t] = t % 2 == 0;
        const std::string computed = std::to_string(mask.changed_count()) + " of " +
                                     std::to_string(mask.tile_count()) + " tiles of 64 computed";
        nn::Tensor reused = whole;
        nn::run_reuse_windows(
            *exec, input,
            upframe::reuse_windows(mask, info.receptive_radius + upframe::kReuseExtraMargin, 8), 0,
            info.receptive_radius, info.scale, upframe::kReuseExtraMargin, reused);
        if (p == nn::Precision::kFp32) {
          const MaxDifference d = max_difference(reused, whole);
          report.add("golden", reuse_check, d.max_abs <= 1e-3 ? "pass" : "fail",
                     computed + ", max diff " + num(d.max_abs, 3) + " vs untiled (limit 1e-3)",
                     {{"max_diff", d.max_abs}});
        } else {
          const ImageComparison t = compare_rgb8(tensor_to_rgb8(reused), tensor_to_rgb8(whole));
          report.add("golden", reuse_check, t.psnr >= 50 ? "pass" : "fail",
                     computed + ", PSNR " + num(t.psnr, 4) + " dB vs untiled (needs >= 50)",
                     {{"psnr_db", t.psnr}});
        }
      });
    }
  }
}

// --- 2b. users' model files (tests/models/pytorch) vs the CPU executor ------------------------

// PSNR of two float images on [0, 1] (each value clamped there first, as the pipeline does).
double psnr_unit(const nn::Tensor& got, const nn::Tensor& ref) {
  max_difference(got, ref);  // the shapes
  double sse = 0;
  for (size_t i = 0; i < ref.data.size(); ++i) {
    const double d =
        std::clamp(double(got.data[i]), 0.0, 1.0) - std::clamp(double(ref.data[i]), 0.0, 1.0);
    sse += d * d;
  }
  const double mse = sse / double(ref.data.size());
  return mse == 0 ? 99.0 : 10 * std::log10(1.0 / mse);
}

// Each model the weight readers and the ONNX importer build (the kit has neither: the built ncnn
// text and weights come in user_models.ref, with the CPU executor's fp32 output on a small
// input), run by the CUDA executor in fp32 (>= 50 dB) and fp16 (>= 40 dB).
void check_user_models(const Options& o, const Device& dev, Report& report) {
  const RefArchive refs = RefArchive::load((o.refs / "user_models.ref").string());
  const auto names = keys_between(refs, "user_models/", "/param");
  if (names.empty()) throw std::runtime_error("user_models.ref holds no model");
  for (const std::string& name : names) {
    const std::string prefix = "user_models/" + name + "/";
    std::shared_ptr<const nn::Model> model;
    nn::Tensor input, reference;
    guarded(report, "user_models", name + kHostHalf, [&] {
      nn::Graph graph = nn::read_ncnn_model_text(string_of(refs, prefix + "param"),
                                                 string_of(refs, prefix + "bin"), name);
      graph.simplify();
      model = nn::Model::from_graph(std::move(graph), name);
      const auto& in_array = refs.at(prefix + "input");
      const int h = int(in_array.dims[0]), w = int(in_array.dims[1]);
      input = rgb8_to_tensor(in_array.values<uint8_t>(), w, 0, 0, h, w);
      reference = tensor_of(refs, prefix + "reference");
      const int scale = int(refs.get<int64_t>(prefix + "scale")[0]);
      const nn::Graph& g = model->graph();
      const nn::Shape out = g.infer_shapes(nn::Shape{3, 3, h, w})[g.output_blob];
      if (model->info().scale != scale || out.c != reference.channels ||
          out.h != reference.height || out.w != reference.width)
        throw std::runtime_error("the carried graph gives x" + std::to_string(model->info().scale) +
                                 ", " + shape_text(out.c, out.h, out.w) + "; the reference is x" +
                                 std::to_string(scale) + ", " +
                                 shape_text(reference.channels, reference.height, reference.width));
      if (!dev.available)
        report.add("user_models", name + kHostHalf, "pass",
                   std::to_string(w) + "x" + std::to_string(h) + " x" + std::to_string(scale) +
                       ", " + std::to_string(g.ops.size()) +
                       " ops built from the carried ncnn files, shapes agree with the CPU "
                       "reference; the GPU halves (fp32 >= 50 dB, fp16 >= 40 dB) skipped: " +
                       dev.reason);
    });
    if (!model || !dev.available) continue;
    for (nn::Precision p : kPrecisions) {
      const std::string check_name = name + " " + nn::precision_name(p) + " vs cpu-fp32";
      guarded(report, "user_models", check_name, [&] {
        const double min_psnr = p == nn::Precision::kFp32 ? 50.0 : 40.0;
        const double psnr = psnr_unit(nn::make_cuda_executor(model, p)->run(input), reference);
        report.add("user_models", check_name, psnr >= min_psnr ? "pass" : "fail",
                   "PSNR " + num(psnr, 4) + " dB (needs >= " + num(min_psnr, 3) + ")",
                   {{"psnr_db", psnr}});
      });
    }
  }
}

// --- 3a. duplicate detection on device planes vs the CPU detector -----------------------------

void check_dedup(const Options& o, const Device& dev, Report& report) {
  const RefArchive refs = RefArchive::load((o.refs / "dedup.ref").string());
  std::unique_ptr<dedup::cuda::DeviceDedup> device_dedup;
  if (dev.available) device_dedup = std::make_unique<dedup::cuda::DeviceDedup>();
  for (const std::string& key : keys_between(refs, "dedup/", "/a")) {
    const std::string prefix = "dedup/" + key + "/";
    guarded(report, "dedup", key, [&] {
      const auto& a_array = refs.at(prefix + "a");
      const int h = int(a_array.dims[0]), w = int(a_array.dims[1]);
      const bool wide = a_array.type != upframe::device_check::RefType::kU8;
      const bool p010 = key.find("/p010") != std::string::npos;
      const int depth = !wide ? 8 : p010 ? 16 : 10;
      const int bytes = wide ? 2 : 1;
      const auto expected_sums = refs.get<int64_t>(prefix + "luma_sums");
      const auto expected_decisions = refs.get<int64_t>(prefix + "decisions");
      std::vector<std::string> mismatches;
      auto expect = [&](const std::string& what, bool equal) {
        if (!equal) mismatches.push_back(what);
      };
      std::vector<uint8_t> host_a = a_array.bytes, host_b = refs.at(prefix + "b").bytes;
      if (!dev.available) {
        // The host half: the kit's own build of the CPU detector code on the carried planes
        // gives the carried results (the files and the kit agree before a GPU is involved).
        const dedup::LumaView va{host_a.data(), w * bytes, w, h, depth};
        const dedup::LumaView vb{host_b.data(), w * bytes, w, h, depth};
        std::vector<uint8_t> copy_a(size_t(w) * h), copy_b(size_t(w) * h);
        uint64_t sum_a = 0, sum_b = 0;
        expect("hash a", hash_values(dedup::detail::hash_and_copy(va, 8, copy_a.data(), &sum_a)) ==
                             refs.get<int64_t>(prefix + "hash8_a"));
        expect("hash b", hash_values(dedup::detail::hash_and_copy(vb, 8, copy_b.data(), &sum_b)) ==
                             refs.get<int64_t>(prefix + "hash8_b"));
        expect("luma sums",
               int64_t(sum_a) == expected_sums[0] && int64_t(sum_b) == expected_sums[1]);
        expect("measures", measure_values(dedup::measure_difference(va, vb)) ==
                               refs.get<double>(prefix + "measures"));
        expect("decision", dedup::detail::confirm_duplicate_8bit(
                               copy_a.data(), w, copy_b.data(), w, w, h, sum_a, sum_b,
                               dedup::default_thresholds()) == bool(expected_decisions[0]));
        report.add("dedup", key + kHostHalf, mismatches.empty() ? "pass" : "fail",
                   mismatches.empty()
                       ? std::string("host code = reference (hash, sums, measures, decision: ") +
                             (expected_decisions[0] ? "duplicate" : "unique") +
                             "); GPU half skipped: " + dev.reason
                       : "host code differs from the reference: " + mismatches.front());
        return;
      }
      // Pitched device planes (a pitch other than the row, as NVDEC's surfaces have).
      DeviceBuffer da(size_t(w) * bytes, size_t(h)), db(size_t(w) * bytes, size_t(h));
      check(cudaMemcpy2D(da.get(), da.pitch(), host_a.data(), size_t(w) * bytes, size_t(w) * bytes,
                         size_t(h), cudaMemcpyHostToDevice),
            "uploading plane a");
      check(cudaMemcpy2D(db.get(), db.pitch(), host_b.data(), size_t(w) * bytes, size_t(w) * bytes,
                         size_t(h), cudaMemcpyHostToDevice),
            "uploading plane b");
      const auto samples = !wide  ? dedup::cuda::LumaSamples::k8Bit
                           : p010 ? dedup::cuda::LumaSamples::kP010
                                  : dedup::cuda::LumaSamples::k10BitLow;
      const dedup::LumaView va = dedup::cuda::device_luma(da.get(), int(da.pitch()), w, h, samples);
      const dedup::LumaView vb = dedup::cuda::device_luma(db.get(), int(db.pitch()), w, h, samples);
      auto& dd = *device_dedup;
      const dedup::cuda::DeviceHash ha = dd.average_hash(va, 8);
      const dedup::cuda::DeviceHash hb = dd.average_hash(vb, 8);
      expect("hash a", hash_values(ha.hash) == refs.get<int64_t>(prefix + "hash8_a"));
      expect("hash b", hash_values(hb.hash) == refs.get<int64_t>(prefix + "hash8_b"));
      expect("hash16 b",
             hash_values(dd.average_hash(vb, 16).hash) == refs.get<int64_t>(prefix + "hash16_b"));
      expect("luma sums",
             int64_t(ha.luma_sum) == expected_sums[0] && int64_t(hb.luma_sum) == expected_sums[1]);
      const dedup::detail::DifferenceSums d = dd.difference_sums(va, vb);
      expect("difference sums",
             difference_values(d) == refs.get<int64_t>(prefix + "difference_sums"));
      const dedup::detail::MotionField& field = dd.motion_field(va, vb);
      expect("motion blocks", block_values(field) == refs.get<int64_t>(prefix + "motion_blocks"));
      expect("motion total",
             motion_values(field.total) == refs.get<int64_t>(prefix + "motion_total"));
      expect("measures", measure_values(dd.measure_difference(va, vb)) ==
                             refs.get<double>(prefix + "measures"));
      const bool dup_default =
          dd.confirm_duplicate(va, ha.luma_sum, vb, hb.luma_sum, dedup::default_thresholds());
      const bool dup_exact =
          dd.confirm_duplicate(va, ha.luma_sum, vb, hb.luma_sum, dedup::exact_thresholds());
      expect("decisions", dup_default == bool(expected_decisions[0]) &&
                              dup_exact == bool(expected_decisions[1]));
      std::string detail = mismatches.empty()
                               ? "bit-identical (hash 8 and 16, sums, motion "
                                 "field, measures, decision: " +
                                     std::string(dup_default ? "duplicate" : "unique") + ")"
                               : "differs from the CPU: ";
      for (size_t i = 0; i < mismatches.size(); ++i) detail += (i ? ", " : "") + mismatches[i];
      report.add("dedup", key, mismatches.empty() ? "pass" : "fail", detail);
    });
  }
}

// --- 3c. duplicate detection at 1080p: the device kernels' time against the CPU code's --------

// Seconds per call of `f`, repeated for at least a quarter of a second (after one warm-up).
double seconds_per_call(const std::function<void()>& f) {
  f();
  int calls = 0;
  const Clock::time_point start = Clock::now();
  double elapsed = 0;
  do {
    f();
    ++calls;
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  } while (elapsed < 0.25 && calls < 10000);
  return elapsed / calls;
}

void check_dedup_speed(const Device& dev, Report& report) {
  const int w = 1920, h = 1080;
  std::vector<uint8_t> a(size_t(w) * h), b(size_t(w) * h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      a[size_t(y) * w + x] = uint8_t((x * 3 + y * 2) % 251);
      b[size_t(y) * w + x] = uint8_t((x * 3 + y * 2 + (x > 900 && x < 1000)) % 251);
    }
  const dedup::LumaView va{a.data(), w, w, h, 8}, vb{b.data(), w, w, h, 8};
  std::vector<uint8_t> copy_a(a.size()), copy_b(b.size());
  uint64_t sum_a = 0, sum_b = 0;
  // The CPU detector's per-frame work: the hash (with its copy), and for a hash match the
  // confirmation; the measures are what --dedup-report prints.
  const double host_hash =
      seconds_per_call([&] { dedup::detail::hash_and_copy(va, 8, copy_a.data(), &sum_a); });
  dedup::detail::hash_and_copy(vb, 8, copy_b.data(), &sum_b);
  const double host_confirm = seconds_per_call([&] {
    dedup::detail::confirm_duplicate_8bit(copy_a.data(), w, copy_b.data(), w, w, h, sum_a, sum_b,
                                          dedup::default_thresholds());
  });
  const double host_measures = seconds_per_call([&] { dedup::measure_difference(va, vb); });
  const std::string host_text = "CPU (one thread): hash " + num(host_hash * 1e3, 3) +
                                " ms, confirmation " + num(host_confirm * 1e3, 3) +
                                " ms, measures " + num(host_measures * 1e3, 3) + " ms";
  std::vector<std::pair<std::string, double>> figures = {{"cpu_hash_ms", host_hash * 1e3},
                                                         {"cpu_confirm_ms", host_confirm * 1e3},
                                                         {"cpu_measures_ms", host_measures * 1e3}};
  if (!dev.available) {
    report.add("dedup_speed", "1920x1080 8-bit", "skip",
               host_text + "; GPU half skipped: " + dev.reason, figures);
    return;
  }
  guarded(report, "dedup_speed", "1920x1080 8-bit", [&] {
    DeviceBuffer da(size_t(w) * 1, size_t(h)), db(size_t(w) * 1, size_t(h));
    check(cudaMemcpy2D(da.get(), da.pitch(), a.data(), w, w, h, cudaMemcpyHostToDevice), "upload");
    check(cudaMemcpy2D(db.get(), db.pitch(), b.data(), w, w, h, cudaMemcpyHostToDevice), "upload");
    const auto samples = dedup::cuda::LumaSamples::k8Bit;
    const dedup::LumaView dva = dedup::cuda::device_luma(da.get(), int(da.pitch()), w, h, samples);
    const dedup::LumaView dvb = dedup::cuda::device_luma(db.get(), int(db.pitch()), w, h, samples);
    dedup::cuda::DeviceDedup dd;
    uint64_t dsum_a = 0, dsum_b = 0;
    // Each call returns its result to the host: the time includes the synchronisation.
    const double dev_hash = seconds_per_call([&] { dsum_a = dd.average_hash(dva, 8).luma_sum; });
    dsum_b = dd.average_hash(dvb, 8).luma_sum;
    const double dev_confirm = seconds_per_call(
        [&] { dd.confirm_duplicate(dva, dsum_a, dvb, dsum_b, dedup::default_thresholds()); });
    const double dev_measures = seconds_per_call([&] { dd.measure_difference(dva, dvb); });
    figures.insert(figures.end(), {{"gpu_hash_ms", dev_hash * 1e3},
                                   {"gpu_confirm_ms", dev_confirm * 1e3},
                                   {"gpu_measures_ms", dev_measures * 1e3}});
    report.add("dedup_speed", "1920x1080 8-bit", "pass",
               "GPU (synchronous calls): hash " + num(dev_hash * 1e3, 3) + " ms (" +
                   num(host_hash / dev_hash, 3) + "x the CPU), confirmation " +
                   num(dev_confirm * 1e3, 3) + " ms (" + num(host_confirm / dev_confirm, 3) +
                   "x), measures " + num(dev_measures * 1e3, 3) + " ms (" +
                   num(host_measures / dev_measures, 3) + "x); " + host_text,
               figures);
  });
}

// --- 3b. colour conversion kernels vs the CPU reference ---------------------------------------

void check_colour(const Options& o, const Device& dev, Report& report) {
  const RefArchive refs = RefArchive::load((o.refs / "colour.ref").string());
  std::unique_ptr<colour::cuda::DeviceColour> device_colour;
  if (dev.available) device_colour = std::make_unique<colour::cuda::DeviceColour>();
  for (const std::string& name : keys_between(refs, "colour/", "/params")) {
    const std::string prefix = "colour/" + name + "/";
    guarded(report, "colour", name, [&] {
      const auto size = refs.get<int64_t>(prefix + "size");
      const int w = int(size[0]), h = int(size[1]), bits = int(size[2]);
      const bool semi = size[3] != 0;
      const int shift = int(size[4]), bytes = bits > 8 ? 2 : 1;
      const auto pv = refs.get<double>(prefix + "params");
      colour::ColourParams params;
      params.matrix = colour::Matrix(int(pv[0]));
      params.full_range = pv[1] != 0;
      params.chroma_x = {int(pv[2]), float(pv[3])};
      params.chroma_y = {int(pv[4]), float(pv[5])};
      const int cw = (w + 1) / 2, ch = (h + 1) / 2;
      // Plane rows (in samples) and counts, as make_refs packed them.
      const int planes = semi ? 2 : 3;
      const int row_samples[3] = {w, semi ? 2 * cw : cw, cw};
      const int rows[3] = {h, ch, ch};
      const std::vector<uint8_t> yuv = refs.at(prefix + "yuv").bytes;
      const std::vector<uint8_t> yuv_back = refs.at(prefix + "yuv_back").bytes;
      const nn::Tensor rgb = tensor_of(refs, prefix + "rgb");
      size_t offsets[3] = {0, 0, 0};
      for (int i = 1; i < planes; ++i)
        offsets[i] = offsets[i - 1] + size_t(row_samples[i - 1]) * rows[i - 1] * bytes;
      const colour::cuda::DeviceYuvFormat format =
          semi ? (bits > 8 ? colour::cuda::DeviceYuvFormat::kP010
                           : colour::cuda::DeviceYuvFormat::kNv12)
               : (bits > 8 ? colour::cuda::DeviceYuvFormat::kYuv420p10le
                           : colour::cuda::DeviceYuvFormat::kYuv420p);
      if (!dev.available) {
        // Host half: the kernels' per-pixel functions over the carried planes give the CPU
        // reference's RGB exactly (the device build differs only in having --fmad=false).
        colour::device_math::YuvPlanes p;
        p.width = w;
        p.height = h;
        p.chroma_width = cw;
        p.chroma_height = ch;
        p.bits = bits;
        p.bytes = bytes;
        p.shift = shift;
        p.interleaved = semi;
        for (int i = 0; i < planes; ++i) {
          p.data[i] = const_cast<uint8_t*>(yuv.data() + offsets[i]);
          p.pitch[i] = ptrdiff_t(row_samples[i]) * bytes;
        }
        double worst = 0;
        for (int y = 0; y < h; ++y)
          for (int x = 0; x < w; ++x) {
            const colour::Rgb v = colour::device_math::yuv_pixel_to_rgb(p, params, x, y);
            worst = std::max({worst, double(std::abs(v.r - rgb.at(0, y, x))),
                              double(std::abs(v.g - rgb.at(1, y, x))),
                              double(std::abs(v.b - rgb.at(2, y, x)))});
          }
        report.add("colour", name + kHostHalf, worst == 0 ? "pass" : "fail",
                   worst == 0
                       ? "the kernels' per-pixel functions on the host = reference RGB; GPU "
                         "half skipped: " +
                             dev.reason
                       : "host per-pixel functions differ from the reference by " + num(worst, 3));
        return;
      }
      std::vector<DeviceBuffer> in_planes, out_planes;
      colour::cuda::DeviceYuvFrame in_frame, out_frame;
      in_frame.format = out_frame.format = format;
      in_frame.width = out_frame.width = w;
      in_frame.height = out_frame.height = h;
      for (int i = 0; i < planes; ++i) {
        const size_t row_bytes = size_t(row_samples[i]) * bytes;
        in_planes.emplace_back(row_bytes, size_t(rows[i]));
        out_planes.emplace_back(row_bytes, size_t(rows[i]));
        check(cudaMemcpy2D(in_planes[i].get(), in_planes[i].pitch(), yuv.data() + offsets[i],
                           row_bytes, row_bytes, size_t(rows[i]), cudaMemcpyHostToDevice),
              "uploading a plane");
        in_frame.data[i] = in_planes[i].get();
        in_frame.pitch[i] = int(in_planes[i].pitch());
        out_frame.data[i] = out_planes[i].get();
        out_frame.pitch[i] = int(out_planes[i].pitch());
      }
      const size_t rgb_bytes = rgb.data.size() * sizeof(float);
      DeviceBuffer d_rgb(rgb_bytes), d_ref_rgb(rgb_bytes);
      check(cudaMemcpy(d_ref_rgb.get(), rgb.data.data(), rgb_bytes, cudaMemcpyHostToDevice),
            "uploading the reference RGB");
      device_colour->yuv_to_rgb(in_frame, params, d_rgb.get<float>());
      device_colour->rgb_to_yuv(d_ref_rgb.get<float>(), out_frame, params);
      device_colour->synchronize();
      std::vector<float> got_rgb(rgb.data.size());
      check(cudaMemcpy(got_rgb.data(), d_rgb.get(), rgb_bytes, cudaMemcpyDeviceToHost),
            "downloading RGB");
      double rgb_worst = 0;
      size_t rgb_exact = 0;
      for (size_t i = 0; i < got_rgb.size(); ++i) {
        const double d = std::abs(double(got_rgb[i]) - rgb.data[i]);
        rgb_worst = std::max(rgb_worst, d);
        rgb_exact += d == 0;
      }
      int code_worst = 0;
      size_t codes = 0, code_exact = 0;
      for (int i = 0; i < planes; ++i) {
        const size_t row_bytes = size_t(row_samples[i]) * bytes;
        std::vector<uint8_t> got(row_bytes * rows[i]);
        check(cudaMemcpy2D(got.data(), row_bytes, out_planes[i].get(), out_planes[i].pitch(),
                           row_bytes, size_t(rows[i]), cudaMemcpyDeviceToHost),
              "downloading a plane");
        for (size_t s = 0; s < got.size() / bytes; ++s) {
          auto word = [&](const uint8_t* base) {
            return bytes == 1 ? int(base[s]) : int(reinterpret_cast<const uint16_t*>(base)[s]);
          };
          const int d =
              std::abs((word(got.data()) >> shift) - (word(yuv_back.data() + offsets[i]) >> shift));
          code_worst = std::max(code_worst, d);
          code_exact += d == 0;
          ++codes;
        }
      }
      const bool ok = rgb_worst <= 1e-6 && code_worst <= 1;
      report.add("colour", name, ok ? "pass" : "fail",
                 "to RGB max diff " + num(rgb_worst, 3) + " (" + std::to_string(rgb_exact) + "/" +
                     std::to_string(got_rgb.size()) + " exact), back to YUV max " +
                     std::to_string(code_worst) + " level (" + std::to_string(code_exact) + "/" +
                     std::to_string(codes) + " exact); limits 1e-6 and 1 level",
                 {{"rgb_max_diff", rgb_worst}, {"code_max_diff", double(code_worst)}});
    });
  }
}

// --- 4. out of memory: smaller tiles, fewer workers -------------------------------------------

// Device memory taken so that only `leave` bytes stay free, released on scope exit.
class Ballast {
 public:
  explicit Ballast(size_t leave) {
    size_t free = 0, total = 0;
    check(cudaMemGetInfo(&free, &total), "cudaMemGetInfo");
    while (free > leave + (64u << 20)) {
      const size_t chunk = std::min<size_t>(free - leave, size_t(4) << 30);
      void* p = nullptr;
      if (cudaMalloc(&p, chunk) != cudaSuccess) {
        cudaGetLastError();
        break;
      }
      blocks_.push_back(p);
      check(cudaMemGetInfo(&free, &total), "cudaMemGetInfo");
    }
    free_ = free;
  }
  ~Ballast() {
    for (void* p : blocks_) cudaFree(p);
  }
  size_t free_bytes() const { return free_; }

 private:
  std::vector<void*> blocks_;
  size_t free_ = 0;
};

// Device memory one executor takes with its plan for a `window` x `window` input built: the
// CUDA context's share, cuDNN's handle and workspace and the weights included (measured, since
// cuDNN's own use is not known in advance).
size_t measured_worker_bytes(const std::shared_ptr<const nn::Model>& model, int window) {
  size_t free_before = 0, free_after = 0, total = 0;
  check(cudaMemGetInfo(&free_before, &total), "cudaMemGetInfo");
  {
    nn::cuda::CudaExecutor exec(model, nn::Precision::kFp16, 0);
    exec.output_shape(3, window, window);  // builds and allocates the plan
    check(cudaMemGetInfo(&free_after, &total), "cudaMemGetInfo");
  }
  return free_before > free_after ? free_before - free_after : 0;
}

void check_memory(const Options& o, const Device& dev, Report& report) {
  auto model = load_model(o, "models/realesr-animevideov3-x2.param");
  const nn::ModelInfo& info = model->info();
  const size_t per_pixel = nn::cuda_bytes_per_input_pixel(*model, nn::Precision::kFp16);
  const int w = 1920, h = 1080;
  const std::string tiles_name = "smaller tiles after out-of-memory";
  const std::string workers_name = "fewer workers when one more does not fit";
  if (!dev.available) {
    report.add("memory", tiles_name, "skip",
               "x2 fp16 at 1920x1080 (about " + std::to_string(per_pixel * w * h >> 20) +
                   " MiB of activations) with a third of that left free; " + dev.reason);
    report.add("memory", workers_name, "skip",
               "8 workers asked with room for about 2.5; " + dev.reason);
    return;
  }
  guarded(report, "memory", tiles_name, [&] {
    nn::Tensor input(3, h, w);
    for (size_t i = 0; i < input.data.size(); ++i) input.data[i] = float(i % 251) / 250.f;
    // Room for the fixed costs and a third of the whole frame's activations: the untiled run is
    // refused, tiles of about a quarter of the frame fit.
    const size_t fixed = measured_worker_bytes(model, 64);
    const size_t leave = fixed + per_pixel * w * h / 3;
    Ballast ballast(leave);
    // The upscaler's loop (src/upscale/neural_upscaler.cpp) with the same policy function.
    int tile = 0;
    std::vector<std::string> tried;
    for (;;) {
      try {
        auto exec = nn::make_cuda_executor(model, nn::Precision::kFp16);
        const nn::Tensor out = nn::run_tiled(*exec, input, tile, info.receptive_radius, info.scale,
                                             info.tile_alignment);
        tried.push_back((tile ? std::to_string(tile) : std::string("untiled")) + " ran");
        const bool ok = tried.size() > 1 && out.width == w * info.scale;
        std::string detail = "x2 fp16 at 1920x1080, " + std::to_string(ballast.free_bytes() >> 20) +
                             " MiB free (one executor's fixed cost " + std::to_string(fixed >> 20) +
                             " MiB); tiles: ";
        for (size_t i = 0; i < tried.size(); ++i) detail += (i ? ", " : "") + tried[i];
        report.add("memory", tiles_name, ok ? "pass" : "fail",
                   ok ? detail : detail + " (expected a refusal first)",
                   {{"final_tile", double(tile)}});
        return;
      } catch (const nn::CudaOutOfMemory& e) {
        tried.push_back((tile ? std::to_string(tile) : std::string("untiled")) + " refused");
        tile = nn::smaller_tile_after_oom(tile, w, h);
        if (tile == 0)
          throw std::runtime_error("out of memory even with the smallest tiles: " +
                                   std::string(e.what()));
      }
    }
  });
  guarded(report, "memory", workers_name, [&] {
    // Each worker: an executor with its plan for 512x512 windows built (activations allocated),
    // as a pipeline worker has after its first frame. Room for about two and a half of them.
    const int window = 512;
    const size_t each = measured_worker_bytes(model, window);
    Ballast ballast(each * 5 / 2);
    const int wanted = 8;
    auto workers = nn::make_workers_fitting(wanted, [&] {
      auto exec = std::make_unique<nn::cuda::CudaExecutor>(model, nn::Precision::kFp16, 0);
      exec->output_shape(3, window, window);
      return exec;
    });
    const int made = int(workers.size());
    report.add("memory", workers_name, made >= 1 && made < wanted ? "pass" : "fail",
               std::to_string(made) + " of " + std::to_string(wanted) + " workers kept with " +
                   std::to_string(ballast.free_bytes() >> 20) + " MiB free (" +
                   std::to_string(each >> 20) + " MiB measured for one)",
               {{"workers", double(made)}, {"worker_mib", double(each >> 20)}});
  });
}

// --- 5. throughput ----------------------------------------------------------------------------

// NVML's GPU utilisation (the fraction of time a kernel ran), opened from the driver with
// dlopen: the toolkit here ships no nvml.h, so the few entry points are declared by hand from
// NVML's documented C API.
class Nvml {
 public:
  Nvml() {
    lib_ = dlopen("libnvidia-ml.so.1", RTLD_NOW);
    if (!lib_) return;
    auto init = reinterpret_cast<int (*)()>(dlsym(lib_, "nvmlInit_v2"));
    auto handle =
        reinterpret_cast<int (*)(unsigned, void**)>(dlsym(lib_, "nvmlDeviceGetHandleByIndex_v2"));
    utilization_ =
        reinterpret_cast<int (*)(void*, unsigned*)>(dlsym(lib_, "nvmlDeviceGetUtilizationRates"));
    if (!init || !handle || !utilization_ || init() != 0 || handle(0, &device_) != 0)
      utilization_ = nullptr;
  }
  bool available() const { return utilization_ != nullptr; }
  // Percent of the last sample period (1/6 s to 1 s) with a kernel running; -1 on failure.
  int gpu_percent() const {
    unsigned rates[2] = {0, 0};  // nvmlUtilization_t: gpu, memory
    return available() && utilization_(device_, rates) == 0 ? int(rates[0]) : -1;
  }

 private:
  void* lib_ = nullptr;
  void* device_ = nullptr;
  int (*utilization_)(void*, unsigned*) = nullptr;
};

double conv_flops(const nn::Graph& g, int w, int h) {
  const auto shapes = g.infer_shapes(nn::Shape{3, 3, h, w});
  double flops = 0;
  for (const nn::Op& op : g.ops) {
    if (op.type != nn::OpType::kConvolution) continue;
    const nn::Shape& in = shapes[op.inputs[0]];
    const nn::Shape& out = shapes[op.outputs[0]];
    const nn::ConvParams& conv = op.get<nn::ConvParams>();
    const int inputs_per_output = in.c / conv.groups;  // whole: groups divide the channels
    flops += 2.0 * out.c * out.h * out.w * inputs_per_output * conv.kernel_h * conv.kernel_w;
  }
  return flops;
}

// What cuDNN runs for each convolution (algorithm, math type): a slow fp16 figure is read at
// once (no tensor cores, or a workspace-free fallback).
std::string algorithm_name(int algo) {
  static const char* const names[] = {
      "IMPLICIT_GEMM", "IMPLICIT_PRECOMP_GEMM", "GEMM", "DIRECT", "FFT", "FFT_TILING",
      "WINOGRAD",      "WINOGRAD_NONFUSED"};
  return algo >= 0 && algo < 8 ? names[algo] : "algorithm " + std::to_string(algo);
}

std::string math_name(int math) {
  static const char* const names[] = {"DEFAULT_MATH", "TENSOR_OP_MATH",
                                      "TENSOR_OP_MATH_ALLOW_CONVERSION", "FMA_MATH"};
  return math >= 0 && math < 4 ? names[math] : "math " + std::to_string(math);
}

void report_convolution_choices(Report& report, const std::string& name,
                                nn::cuda::CudaExecutor& exec, int w, int h) {
  const std::vector<nn::cuda::ConvolutionChoice> choices = exec.convolution_choices(3, h, w);
  std::map<std::string, int> counts;
  int tensor = 0;
  size_t workspace = 0;
  for (const auto& c : choices) {
    ++counts[algorithm_name(c.algorithm) + " " + math_name(c.math_type)];
    tensor += c.tensor_cores;
    workspace = std::max(workspace, c.workspace_bytes);
  }
  std::string detail = std::to_string(choices.size()) + " convolutions: ";
  bool first = true;
  for (const auto& [what, n] : counts) {
    detail += (first ? "" : ", ") + what + " x" + std::to_string(n);
    first = false;
  }
  detail += "; tensor cores in " + std::to_string(tensor) + ", largest workspace " +
            num(double(workspace) / (1 << 20), 3) + " MiB";
  std::vector<std::pair<std::string, double>> figures = {
      {"convolutions", double(choices.size())}, {"tensor_core_convolutions", double(tensor)}};
  for (size_t i = 0; i < choices.size(); ++i) {
    figures.emplace_back("conv" + std::to_string(i) + "_algorithm", choices[i].algorithm);
    figures.emplace_back("conv" + std::to_string(i) + "_math", choices[i].math_type);
  }
  report.add("cudnn", name, "pass", detail, figures);
}

void check_throughput(const Options& o, const Device& dev, Report& report) {
  const Nvml nvml;
  for (const char* param :
       {"models/realesr-animevideov3-x2.param", "models/realesr-animevideov3-x4.param"}) {
    auto model = load_model(o, param);
    const std::string stem = model->info().name;
    for (const auto& size : {std::pair{480, 270}, std::pair{1920, 1080}}) {
      const int w = size.first, h = size.second;  // not a structured binding: lambdas use them
      const double flops = conv_flops(model->graph(), w, h);
      for (nn::Precision p : {nn::Precision::kFp16, nn::Precision::kFp32}) {
        const std::string base =
            stem + " " + std::to_string(w) + "x" + std::to_string(h) + " " + nn::precision_name(p);
        if (!dev.available) {
          report.add("throughput", base, "skip",
                     num(flops / 1e9, 4) + " GFLOP of convolution a frame, 1 to " +
                         std::to_string(o.max_streams) + " streams; " + dev.reason,
                     {{"gflop_per_frame", flops / 1e9}});
          continue;
        }
        guarded(report, "throughput", base, [&] {
          // One executor (stream) per worker, as the pipeline's workers; device input/output.
          struct Worker {
            std::unique_ptr<nn::cuda::CudaExecutor> exec;
            DeviceBuffer in, out;
          };
          std::vector<Worker> workers;
          std::vector<float> pattern(size_t(3) * w * h);
          for (size_t i = 0; i < pattern.size(); ++i) pattern[i] = float(i % 253) / 252.f;
          for (int s = 0; s < o.max_streams; ++s) {
            Worker wk;
            wk.exec = std::make_unique<nn::cuda::CudaExecutor>(model, p, 0);
            const nn::cuda::ImageShape out = wk.exec->output_shape(3, h, w);
            wk.in = DeviceBuffer(pattern.size() * sizeof(float));
            wk.out = DeviceBuffer(size_t(out.channels) * out.height * out.width * sizeof(float));
            check(cudaMemcpy(wk.in.get(), pattern.data(), pattern.size() * sizeof(float),
                             cudaMemcpyHostToDevice),
                  "uploading the input");
            wk.exec->run_device(wk.in.get<float>(), 3, h, w, wk.out.get<float>());  // warm-up
            check(cudaStreamSynchronize(wk.exec->stream()), "warm-up");
            workers.push_back(std::move(wk));
          }
          report_convolution_choices(report, base, *workers.front().exec, w, h);
          for (int streams = 1; streams <= o.max_streams; ++streams) {
            std::atomic<bool> stop{false};
            std::atomic<int64_t> frames{0};
            std::mutex intervals_mutex;
            std::vector<std::pair<double, double>> intervals;  // seconds since start, per frame
            std::vector<int> samples;
            const Clock::time_point start = Clock::now();
            auto since = [&] {
              return std::chrono::duration<double>(Clock::now() - start).count();
            };
            std::thread sampler([&] {
              while (!stop) {
                std::this_thread::sleep_for(std::chrono::milliseconds(100));
                if (int v = nvml.gpu_percent(); v >= 0 && since() > 0.2) samples.push_back(v);
              }
            });
            std::vector<std::thread> threads;
            threads.reserve(size_t(streams));
            std::vector<std::string> errors(streams);
            for (int s = 0; s < streams; ++s)
              threads.emplace_back([&, s] {
                try {
                  Worker& wk = workers[s];
                  while (since() < o.seconds) {
                    const double t0 = since();
                    wk.exec->run_device(wk.in.get<float>(), 3, h, w, wk.out.get<float>());
                    check(cudaStreamSynchronize(wk.exec->stream()), "a frame");
                    const double t1 = since();
                    ++frames;
                    std::lock_guard lock(intervals_mutex);
                    intervals.emplace_back(t0, t1);
                  }
                } catch (const std::exception& e) {
                  errors[s] = e.what();
                }
              });
            for (auto& t : threads) t.join();
            const double wall = since();
            stop = true;
            sampler.join();
            for (const std::string& e : errors)
              if (!e.empty()) throw std::runtime_error(e);
            // Time with at least one frame in flight: the union of the frames' intervals.
            std::sort(intervals.begin(), intervals.end());
            double busy = 0, end = 0;
            for (const auto& [a, b] : intervals) {
              if (b <= end) continue;
              busy += b - std::max(a, end);
              end = b;
            }
            double nvml_busy = -1;
            if (!samples.empty()) {
              double sum = 0;
              for (int v : samples) sum += v;
              nvml_busy = sum / double(samples.size()) / 100.0;
            }
            const double fps = double(frames) / wall;
            const double tflops = fps * flops / 1e12;
            const double peak = dev.peak_tflops(p);
            report.add(
                "throughput", base + " " + std::to_string(streams) + " stream(s)", "pass",
                num(fps, 4) + " frames/s, " + num(tflops, 4) + " TFLOP/s" +
                    (peak > 0 ? " (" + num(100 * tflops / peak, 3) + " % of the nominal " +
                                    num(peak, 4) + ")"
                              : "") +
                    ", GPU busy " +
                    (nvml_busy >= 0 ? num(100 * nvml_busy, 3) + " % (NVML)" : "n/a (no NVML)") +
                    ", frames in flight " + num(100 * busy / wall, 3) + " % of the time",
                {{"fps", fps},
                 {"tflops", tflops},
                 {"peak_tflops", peak},
                 {"gpu_busy_nvml", nvml_busy},
                 {"in_flight_fraction", busy / wall},
                 {"streams", streams},
                 {"width", w},
                 {"height", h}});
          }
        });
      }
    }
  }
}

// --- 6. NVDEC: carried H.264 and HEVC streams vs FFmpeg's software decode --------------------

// Which way upframe's upscaler takes a decoded frame of this layout: the device colour kernels
// or the host (colour::cuda::device_yuv_format_of, the predicate the upscaler's own follows).
std::string colour_route(bool chroma444, int bits) {
  colour::cuda::YuvLayout layout;
  layout.chroma_shift_x = layout.chroma_shift_y = chroma444 ? 0 : 1;
  layout.bits = bits;
  layout.sample_bytes = bits > 8 ? 2 : 1;
  layout.high_bits = bits > 8;  // NVDEC's P016 / 16-bit 4:4:4 keep the bits at the top
  layout.interleaved = !chroma444;
  colour::cuda::DeviceYuvFormat format{};
  return colour::cuda::device_yuv_format_of(layout, &format)
             ? "upframe converts such frames on the device"
             : "upframe converts such frames on the host (the device colour code takes 4:2:0 at "
               "8 and 10 bits)";
}

void check_nvdec(const Options& o, const Device& dev, Report& report) {
  const RefArchive refs = RefArchive::load((o.refs / "nvdec.ref").string());
  for (const std::string& name : keys_between(refs, "nvdec/", "/stream")) {
    const std::string prefix = "nvdec/" + name + "/";
    guarded(report, "nvdec", name, [&] {
      const auto size = refs.get<int64_t>(prefix + "size");
      const int w = int(size[0]), h = int(size[1]), bits = int(size[2]), count = int(size[3]);
      const bool hevc = size[4] != 0;
      const bool chroma444 = size.size() > 5 && size[5] != 0;
      const std::vector<uint8_t> stream = refs.get<uint8_t>(prefix + "stream");
      const std::vector<uint8_t>& expected = refs.at(prefix + "frames").bytes;
      const size_t chroma = chroma444 ? 2 * size_t(w) * h : 2 * size_t((w + 1) / 2) * ((h + 1) / 2);
      const size_t frame_bytes = (size_t(w) * h + chroma) * (bits > 8 ? 2 : 1);
      if (expected.size() != frame_bytes * count)
        throw std::runtime_error("nvdec.ref: the frames do not match the size record");
      const std::string what = std::to_string(count) + " frames " + std::to_string(w) + "x" +
                               std::to_string(h) + " " + (hevc ? "HEVC" : "H.264") + " " +
                               (chroma444 ? "4:4:4 " : "4:2:0 ") + std::to_string(bits) + "-bit (" +
                               std::to_string(stream.size()) + " bytes)";
      const std::string route = colour_route(chroma444, bits);
      if (!dev.available) {
        report.add(
            "nvdec", name + kHostHalf, "pass",
            what + " and FFmpeg's frames carried; " + route + "; GPU half skipped: " + dev.reason);
        return;
      }
      int decoded = 0;
      bool unsupported = false;
      std::vector<uint8_t> got;
      try {
        got = upframe::device_check::nvdec_decode(stream, hevc, &decoded, &unsupported);
      } catch (const std::exception& e) {
        if (!unsupported) throw;
        report.add("nvdec", name, "skip", what + ": " + e.what());
        return;
      }
      int exact = 0;
      for (int i = 0; i < std::min(decoded, count); ++i)
        exact += got.size() >= (i + 1) * frame_bytes &&
                 std::memcmp(got.data() + i * frame_bytes, expected.data() + i * frame_bytes,
                             frame_bytes) == 0;
      const bool ok = decoded == count && exact == count;
      report.add("nvdec", name, ok ? "pass" : "fail",
                 what + ": NVDEC gave " + std::to_string(decoded) + " frames, " +
                     std::to_string(exact) +
                     " bit-identical to FFmpeg's software decode (every row and column); " + route,
                 {{"frames", double(decoded)}, {"bit_identical", double(exact)}});
    });
  }
}

// ---------------------------------------------------------------------------------------------

std::string device_json(const Device& d) {
  if (!d.available) return "{\"available\": false, \"reason\": \"" + json_escape(d.reason) + "\"}";
  std::ostringstream s;
  s << "{\"available\": true, \"name\": \"" << json_escape(d.props.name)
    << "\", \"compute_capability\": \"" << d.props.major << "." << d.props.minor
    << "\", \"multiprocessors\": " << d.props.multiProcessorCount
    << ", \"clock_mhz\": " << d.clock_khz / 1000 << ", \"memory_mib\": " << (d.total_bytes >> 20)
    << ", \"free_mib\": " << (d.free_bytes >> 20)
    << ", \"peak_tflops_fp16_tensor\": " << json_number(d.peak_tflops(nn::Precision::kFp16))
    << ", \"peak_tflops_fp32\": " << json_number(d.peak_tflops(nn::Precision::kFp32)) << "}";
  return s.str();
}

// Test hooks (tests/device_kit): UPFRAME_KIT_TEST_CRASH=SECTION aborts the process as that
// section starts (a crash in code that never ran); UPFRAME_KIT_TEST_SLEEP=SECTION makes it hang
// there (the script's deadline must cut it).
void test_hooks(const std::string& section) {
  const char* crash = std::getenv("UPFRAME_KIT_TEST_CRASH");
  if (crash && section == crash) {
    std::printf("test hook: crashing in section %s\n", section.c_str());
    std::fflush(stdout);
    std::abort();
  }
  const char* sleep = std::getenv("UPFRAME_KIT_TEST_SLEEP");
  if (sleep && section == sleep) {
    std::printf("test hook: hanging in section %s\n", section.c_str());
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::hours(1));
  }
}

int usage() {
  std::fprintf(stderr,
               "usage: upframe_device_check [--source DIR] [--refs DIR] [--json FILE] "
               "[--cpu-dry-run] [--sections a,b,...] [--seconds S] [--max-streams N]\n"
               "sections: device, ops, golden, user_models, dedup, dedup_speed, colour, memory, "
               "throughput, nvdec\n");
  return 2;
}

}  // namespace

static int run_checks(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(arg + " needs a value");
      return argv[++i];
    };
    try {
      if (arg == "--source") {
        o.source = value();
      } else if (arg == "--refs") {
        o.refs = value();
      } else if (arg == "--json") {
        o.json = value();
      } else if (arg == "--cpu-dry-run") {
        o.dry_run = true;
      } else if (arg == "--seconds") {
        o.seconds = std::stod(value());
      } else if (arg == "--max-streams") {
        o.max_streams = std::clamp(std::stoi(value()), 1, 8);
      } else if (arg == "--sections") {
        o.sections.clear();
        std::stringstream list(value());
        for (std::string s; std::getline(list, s, ',');) o.sections.push_back(s);
      } else {
        return usage();
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "upframe_device_check: error: %s\n", e.what());
      return usage();
    }
  }
  if (o.refs.empty()) o.refs = o.source / "tools/device-check/refs";

  const Clock::time_point start = Clock::now();
  const Device dev = probe_device(o.dry_run);
  Report report(o.json, o.dry_run, !o.dry_run && !dev.available);
  report.set_device(device_json(dev));
  // The probe as a check: a run meant for a GPU that finds none has failed (its GPU halves did
  // not run).
  auto check_device = [&] {
    if (dev.available)
      report.add("device", "probe", "pass",
                 std::string(dev.props.name) + ", compute capability " +
                     std::to_string(dev.props.major) + "." + std::to_string(dev.props.minor) +
                     ", " + std::to_string(dev.props.multiProcessorCount) + " SMs at " +
                     std::to_string(dev.clock_khz / 1000) + " MHz, " +
                     std::to_string(dev.free_bytes >> 20) + " of " +
                     std::to_string(dev.total_bytes >> 20) + " MiB free, cuDNN " +
                     std::to_string(cudnnGetVersion()));
    else
      report.add("device", "probe", o.dry_run ? "skip" : "fail",
                 "no usable device (" + dev.reason + "): GPU steps are skipped" +
                     (o.dry_run ? "" : ", host halves shown as skipped"));
  };

  const std::map<std::string, std::function<void()>> sections = {
      {"device", check_device},
      {"ops", [&] { check_ops(o, dev, report); }},
      {"golden", [&] { check_golden(o, dev, report); }},
      {"user_models", [&] { check_user_models(o, dev, report); }},
      {"dedup", [&] { check_dedup(o, dev, report); }},
      {"dedup_speed", [&] { check_dedup_speed(dev, report); }},
      {"colour", [&] { check_colour(o, dev, report); }},
      {"memory", [&] { check_memory(o, dev, report); }},
      {"throughput", [&] { check_throughput(o, dev, report); }},
      {"nvdec", [&] { check_nvdec(o, dev, report); }},
  };
  for (const std::string& name : o.sections) {
    auto it = sections.find(name);
    if (it == sections.end()) {
      std::fprintf(stderr, "upframe_device_check: error: unknown section '%s'\n", name.c_str());
      return usage();
    }
    test_hooks(name);
    guarded(report, name, "(section)", it->second);
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  report.set_seconds(seconds);
  report.write_json();
  std::printf("summary: %d passed, %d failed, %d skipped in %.1f s%s\n", report.count("pass"),
              report.count("fail"), report.count("skip"), seconds,
              o.json.empty() ? "" : (", report " + o.json.string()).c_str());
  return report.count("fail") ? 1 : 0;
}

int main(int argc, char** argv) {
  try {
    return run_checks(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "upframe_device_check: error: %s\n", e.what());
    return 1;
  }
}
