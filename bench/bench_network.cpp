// Whole-network time per frame on the CPU backend, side by side with the "raw convolution
// rate" (docs/INTERFACE.md): each convolution layer of the same network run alone as a oneDNN
// primitive with format_tag::any, weights and layouts prepared once, same threads. The two
// alternate within each iteration so both see the same machine load; medians are reported.
//
//   bench_network [--model=NAME|PATH.param] [--width=480] [--height=270]
//                 [--precision=fp32|bf16|both] [--threads=N] [--iterations=5] [--verbose]
//
// NAME is a model of models/ (default realesr-animevideov3-x2). GFLOP/s counts convolution
// FLOPs only (2*KH*KW*IC/groups*OC per output value). bf16 runs where oneDNN's ISA has it
// ("both", the default, runs fp32 and bf16 there, fp32 alone elsewhere, saying so). Uses the
// library's public executor API and the graph header only, so the same file builds against an
// older commit for before/after figures (bench/compare_builds.sh).
#include <omp.h>
#include <time.h>

#include <spdlog/spdlog.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <random>
#include <string>
#include <vector>

#include "../src/nn/graph.hpp"  // relative: the graph is not a public header
#include "support/test_support.hpp"
#include "upframe/nn/model.hpp"

namespace {

using namespace upframe;
using dnnl::memory;

struct Options {
  std::string model = "realesr-animevideov3-x2";
  int width = 480, height = 270;
  std::string precision = "both";
  int threads = 0;
  int iterations = 5;
};

std::filesystem::path model_param(const std::string& model) {
  const std::filesystem::path named = test::source_dir() / "models" / (model + ".param");
  return std::filesystem::exists(named) ? named : std::filesystem::path(model);
}

double load_average() {
  std::ifstream in("/proc/loadavg");
  double load = -1;
  in >> load;
  return load;
}

double process_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The network's convolution layers, each alone as a oneDNN primitive (the "raw convolution
// rate"), at the shapes the graph gives them for the input size.
class RawConvolutions {
 public:
  RawConvolutions(const nn::Graph& graph, const nn::Shape& input, nn::Precision precision)
      : engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {
    const auto type =
        precision == nn::Precision::kBf16 ? memory::data_type::bf16 : memory::data_type::f32;
    const std::vector<nn::Shape> shapes = graph.infer_shapes(input);
    for (const nn::Op& op : graph.ops) {
      if (op.type == nn::OpType::kDeconvolution) ++skipped_;
      if (op.type != nn::OpType::kConvolution) continue;
      const nn::ConvParams& c = op.get<nn::ConvParams>();
      const nn::Shape& in = shapes[op.inputs[0]];
      const nn::Shape& out = shapes[op.outputs[0]];
      const int g = c.groups;
      memory::dims wdims =
          g == 1 ? memory::dims{c.num_output, in.c, c.kernel_h, c.kernel_w}
                 : memory::dims{g, c.num_output / g, in.c / g, c.kernel_h, c.kernel_w};
      const nn::ConvPads pads = nn::resolve_conv_pads(c, in.h, in.w);
      memory::desc src({1, in.c, in.h, in.w}, type, memory::format_tag::any);
      memory::desc wei(wdims, type, memory::format_tag::any);
      memory::desc bias({c.num_output}, memory::data_type::f32, memory::format_tag::x);
      memory::desc dst({1, out.c, out.h, out.w}, memory::data_type::f32, memory::format_tag::any);
      dnnl::convolution_forward::desc d(
          dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src, wei, bias,
          dst, {c.stride_h, c.stride_w}, {c.dilation_h - 1, c.dilation_w - 1},
          {pads.top, pads.left}, {pads.bottom, pads.right});
      dnnl::convolution_forward::primitive_desc pd(d, engine_);
      Prepared p{dnnl::convolution_forward(pd), memory(pd.src_desc(), engine_),
                 memory(pd.weights_desc(), engine_), memory(bias, engine_),
                 memory(pd.dst_desc(), engine_)};
      for (memory* m : {&p.src, &p.weights, &p.bias, &p.dst})
        std::memset(m->get_data_handle(), 0, m->get_desc().get_size());
      if (convs_.empty()) implementation_ = pd.impl_info_str();
      flops_ += 2.0 * c.kernel_h * c.kernel_w * (in.c / g) * out.c * out.h * out.w;
      convs_.push_back(std::move(p));
    }
  }
  // `per_layer_ms` (optional) receives each layer's time.
  void run(std::vector<double>* per_layer_ms = nullptr) {
    for (auto& p : convs_) {
      const auto t0 = std::chrono::steady_clock::now();
      p.conv.execute(stream_, {{DNNL_ARG_SRC, p.src},
                               {DNNL_ARG_WEIGHTS, p.weights},
                               {DNNL_ARG_BIAS, p.bias},
                               {DNNL_ARG_DST, p.dst}});
      if (!per_layer_ms) continue;
      stream_.wait();
      per_layer_ms->push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    stream_.wait();
  }
  double flops() const { return flops_; }
  size_t count() const { return convs_.size(); }
  int skipped_deconvolutions() const { return skipped_; }
  const std::string& implementation() const { return implementation_; }

 private:
  struct Prepared {
    dnnl::convolution_forward conv;
    memory src, weights, bias, dst;
  };
  dnnl::engine engine_;
  dnnl::stream stream_;
  std::vector<Prepared> convs_;
  double flops_ = 0;
  int skipped_ = 0;
  std::string implementation_;
};

// One precision's network and raw convolutions, with their times per iteration.
struct Case {
  explicit Case(nn::Precision p) : precision(p) {}
  nn::Precision precision;
  std::unique_ptr<nn::Executor> executor;
  std::unique_ptr<RawConvolutions> raw;
  std::vector<double> network, convs, network_cpu, convs_cpu;
};

// Every case's network and raw convolutions run one after the other in each iteration, so all
// see the same machine load (the ratios, bf16 against fp32 included, are side by side).
void measure(const Options& o, const std::shared_ptr<const nn::Model>& model,
             std::vector<Case>& cases) {
  nn::Tensor input(3, o.height, o.width);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> dist(0.f, 1.f);
  for (float& v : input.data) v = dist(rng);
  for (Case& c : cases) {
    c.executor = nn::make_cpu_executor(model, c.precision, o.threads);
    c.raw = std::make_unique<RawConvolutions>(model->graph(), nn::Shape{3, 3, o.height, o.width},
                                              c.precision);
    c.executor->run(input);  // plan, primitives and weights prepared outside the timing
    c.raw->run();
  }
  const double load_before = load_average();
  for (int i = 0; i < o.iterations; ++i)
    for (Case& c : cases) {
      const auto t0 = std::chrono::steady_clock::now();
      const double c0 = process_cpu_seconds();
      nn::Tensor out = c.executor->run(input);
      const auto t1 = std::chrono::steady_clock::now();
      const double c1 = process_cpu_seconds();
      c.raw->run();
      const auto t2 = std::chrono::steady_clock::now();
      const double c2 = process_cpu_seconds();
      c.network.push_back(std::chrono::duration<double>(t1 - t0).count());
      c.convs.push_back(std::chrono::duration<double>(t2 - t1).count());
      c.network_cpu.push_back(c1 - c0);
      c.convs_cpu.push_back(c2 - c1);
    }
  const double load_after = load_average();
  for (Case& c : cases) {
    if (spdlog::get_level() <= spdlog::level::debug) {  // --verbose: the raw layers one by one
      std::vector<double> ms;
      c.raw->run(&ms);
      for (size_t i = 0; i < ms.size(); ++i)
        spdlog::debug("raw convolution {}: {:.2f} ms", i, ms[i]);
    }
    const double network = median(c.network), convs = median(c.convs);
    const double flops = c.raw->flops();
    std::printf(
        "%s: network %.3f s/frame (%.1f GFLOP/s), raw convolutions %.3f s/frame (%.1f GFLOP/s, "
        "%zu layers, %s): network at %.1f%% of the raw convolution rate (%.1f%% by CPU time; "
        "median of %d, load %.2f -> %.2f)\n",
        nn::precision_name(c.precision), network, flops / network / 1e9, convs, flops / convs / 1e9,
        c.raw->count(), c.raw->implementation().c_str(), 100.0 * convs / network,
        100.0 * median(c.convs_cpu) / median(c.network_cpu), o.iterations, load_before, load_after);
    if (c.raw->skipped_deconvolutions() > 0)
      std::printf("  (%d deconvolution layers are in the network time, not in the raw one)\n",
                  c.raw->skipped_deconvolutions());
  }
  if (cases.size() == 2) {
    // Per iteration (both ran back to back), then the median of those ratios.
    std::vector<double> network, convs;
    for (int i = 0; i < o.iterations; ++i) {
      network.push_back(cases[0].network[i] / cases[1].network[i]);
      convs.push_back(cases[0].convs[i] / cases[1].convs[i]);
    }
    std::printf(
        "bf16 vs fp32: network %.2fx faster, raw convolutions %.2fx faster (medians of "
        "the per-iteration ratios)\n",
        median(network), median(convs));
  }
  std::fflush(stdout);
}

bool take(const char* arg, const char* flag, std::string* value) {
  const size_t n = std::strlen(flag);
  if (std::strncmp(arg, flag, n) != 0 || arg[n] != '=') return false;
  *value = arg + n + 1;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string v;
    if (take(argv[i], "--model", &v))
      o.model = v;
    else if (take(argv[i], "--width", &v))
      o.width = std::atoi(v.c_str());
    else if (take(argv[i], "--height", &v))
      o.height = std::atoi(v.c_str());
    else if (take(argv[i], "--precision", &v))
      o.precision = v;
    else if (take(argv[i], "--threads", &v))
      o.threads = std::atoi(v.c_str());
    else if (std::strcmp(argv[i], "--verbose") == 0)
      spdlog::set_level(spdlog::level::debug);  // the layers' oneDNN implementations
    else if (take(argv[i], "--iterations", &v))
      o.iterations = std::max(1, std::atoi(v.c_str()));
    else {
      std::fprintf(stderr,
                   "usage: bench_network [--model=NAME|PATH.param] [--width=N] [--height=N] "
                   "[--precision=fp32|bf16|both] [--threads=N] [--iterations=N]\n");
      return 2;
    }
  }
  if (o.threads > 0) omp_set_num_threads(o.threads);
  try {
    const std::filesystem::path param = model_param(o.model);
    auto model = nn::Model::load(param, std::filesystem::path(param).replace_extension(".bin"));
    const bool bf16 = nn::cpu_supports_bf16();
    std::printf("bench_network: %s at %dx%d, %d threads, oneDNN %d.%d.%d, ISA %s\n",
                model->info().name.c_str(), o.width, o.height,
                o.threads > 0 ? o.threads : omp_get_max_threads(), dnnl_version()->major,
                dnnl_version()->minor, dnnl_version()->patch, nn::cpu_isa_name().c_str());
    std::vector<Case> cases;
    if (o.precision == "fp32" || o.precision == "both") cases.emplace_back(nn::Precision::kFp32);
    if (o.precision == "bf16" || (o.precision == "both" && bf16))
      cases.emplace_back(nn::Precision::kBf16);
    else if (o.precision == "both")
      std::printf("bf16: skipped, oneDNN's ISA here (%s) has neither avx512_bf16 nor AMX\n",
                  nn::cpu_isa_name().c_str());
    measure(o, model, cases);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_network: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
