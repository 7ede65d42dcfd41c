// Whole-network throughput of realesr-animevideov3 on the CPU backend, side by side with the
// "raw convolution rate" (SPEC section 8): each convolution layer of the network run alone as a
// oneDNN primitive with format_tag::any, weights and layouts prepared once, same threads.
//
//   bench_nn [--threads=N] [--iterations=5] [--width=480 --height=270] [benchmark flags]
//
// Prints GFLOP/s (convolution FLOPs only, 2*K*K*IC*OC per output pixel) and s/frame for both,
// then the ratio network / raw.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <oneapi/dnnl/dnnl.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "support/test_support.hpp"
#include "upframe/nn/model.hpp"

namespace {

using namespace upframe;
using dnnl::memory;

int g_threads = 0;
int g_width = 480, g_height = 270;
int g_iterations = 5;
std::map<std::string, double> g_seconds_per_frame;  // by benchmark label

struct ConvLayer {
  int in_c, out_c, kernel;
};

std::filesystem::path model_param() {
  return test::source_dir() / "models" / "realesr-animevideov3-x4.param";
}

// Convolution layers read from the .param (all are stride 1, "same" padding in this model).
std::vector<ConvLayer> conv_layers() {
  std::ifstream in(model_param());
  std::string line;
  std::vector<ConvLayer> layers;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string type;
    ls >> type;
    if (type != "Convolution") continue;
    std::map<int, int> p;
    std::string tok;
    while (ls >> tok) {
      auto eq = tok.find('=');
      if (eq != std::string::npos && tok[0] != '-')
        p[std::stoi(tok.substr(0, eq))] = std::stoi(tok.substr(eq + 1));
    }
    int k = p[1];
    layers.push_back({p[6] / (p[0] * k * k), p[0], k});
  }
  return layers;
}

double conv_flops(const std::vector<ConvLayer>& layers) {
  double f = 0;
  for (const auto& l : layers)
    f += 2.0 * l.kernel * l.kernel * l.in_c * l.out_c * g_width * g_height;
  return f;
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

// Each convolution layer alone as a oneDNN primitive, format_tag::any, weights and layouts
// prepared once (the "raw convolution rate").
class RawConvolutions {
 public:
  explicit RawConvolutions(nn::Precision precision)
      : engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {
    auto type =
        precision == nn::Precision::kBf16 ? memory::data_type::bf16 : memory::data_type::f32;
    for (const auto& l : conv_layers()) {
      memory::desc src({1, l.in_c, g_height, g_width}, type, memory::format_tag::any);
      memory::desc wei({l.out_c, l.in_c, l.kernel, l.kernel}, type, memory::format_tag::any);
      memory::desc bias({l.out_c}, memory::data_type::f32, memory::format_tag::x);
      memory::desc dst({1, l.out_c, g_height, g_width}, memory::data_type::f32,
                       memory::format_tag::any);
      int pad = l.kernel / 2;
      dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference,
                                        dnnl::algorithm::convolution_direct, src, wei, bias, dst,
                                        {1, 1}, {0, 0}, {pad, pad}, {pad, pad});
      dnnl::convolution_forward::primitive_desc pd(d, engine_);
      Prepared p{dnnl::convolution_forward(pd), memory(pd.src_desc(), engine_),
                 memory(pd.weights_desc(), engine_), memory(bias, engine_),
                 memory(pd.dst_desc(), engine_)};
      for (memory* m : {&p.src, &p.weights, &p.bias, &p.dst})
        std::memset(m->get_data_handle(), 0, m->get_desc().get_size());
      if (convs_.empty()) std::printf("raw conv implementation: %s\n", pd.impl_info_str());
      convs_.push_back(std::move(p));
    }
  }
  void run() {
    for (auto& p : convs_)
      p.conv.execute(stream_, {{DNNL_ARG_SRC, p.src},
                               {DNNL_ARG_WEIGHTS, p.weights},
                               {DNNL_ARG_BIAS, p.bias},
                               {DNNL_ARG_DST, p.dst}});
    stream_.wait();
  }

 private:
  struct Prepared {
    dnnl::convolution_forward conv;
    memory src, weights, bias, dst;
  };
  dnnl::engine engine_;
  dnnl::stream stream_;
  std::vector<Prepared> convs_;
};

// Network and raw convolutions alternate within each iteration, so both see the same machine
// load; medians over the iterations are reported.
void BM_NetworkVsRaw(benchmark::State& state, nn::Precision precision) {
  if (g_threads > 0) omp_set_num_threads(g_threads);
  auto model = nn::Model::load(model_param(),
                               std::filesystem::path(model_param()).replace_extension(".bin"));
  auto exec = nn::make_cpu_executor(model, precision, g_threads);
  RawConvolutions raw(precision);
  nn::Tensor input(3, g_height, g_width);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> dist(0.f, 1.f);
  for (float& v : input.data) v = dist(rng);
  exec->run(input);  // plan, primitives and weights prepared outside the timing
  raw.run();
  std::vector<double> net_wall, raw_wall, net_cpu, raw_cpu;
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    double c0 = process_cpu_seconds();
    nn::Tensor out = exec->run(input);
    benchmark::DoNotOptimize(out.data.data());
    auto t1 = std::chrono::steady_clock::now();
    double c1 = process_cpu_seconds();
    raw.run();
    auto t2 = std::chrono::steady_clock::now();
    double c2 = process_cpu_seconds();
    net_wall.push_back(std::chrono::duration<double>(t1 - t0).count());
    raw_wall.push_back(std::chrono::duration<double>(t2 - t1).count());
    net_cpu.push_back(c1 - c0);
    raw_cpu.push_back(c2 - c1);
  }
  double flops = conv_flops(conv_layers());
  double net = median(net_wall), rawm = median(raw_wall);
  state.counters["net_s_per_frame"] = net;
  state.counters["net_GFLOP_per_s"] = flops / net / 1e9;
  state.counters["raw_s_per_frame"] = rawm;
  state.counters["raw_GFLOP_per_s"] = flops / rawm / 1e9;
  state.counters["net_pct_of_raw"] = 100.0 * rawm / net;
  state.counters["net_pct_of_raw_cpu_time"] = 100.0 * median(raw_cpu) / median(net_cpu);
  std::string p = nn::precision_name(precision);
  g_seconds_per_frame["network " + p] = net;
  g_seconds_per_frame["raw convs " + p] = rawm;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0)
      g_threads = std::atoi(argv[i] + 10);
    else if (std::strncmp(argv[i], "--iterations=", 13) == 0)
      g_iterations = std::atoi(argv[i] + 13);
    else if (std::strncmp(argv[i], "--width=", 8) == 0)
      g_width = std::atoi(argv[i] + 8);
    else if (std::strncmp(argv[i], "--height=", 9) == 0)
      g_height = std::atoi(argv[i] + 9);
    else
      rest.push_back(argv[i]);
  }
  int threads = g_threads > 0 ? g_threads : omp_get_max_threads();
  std::printf(
      "realesr-animevideov3 at %dx%d, %d threads, oneDNN %d.%d.%d, %d conv layers, %.1f "
      "GFLOP/frame\n",
      g_width, g_height, threads, dnnl_version()->major, dnnl_version()->minor,
      dnnl_version()->patch, int(conv_layers().size()), conv_flops(conv_layers()) / 1e9);
  auto add = [](const char* name, nn::Precision p) {
    benchmark::RegisterBenchmark(name, BM_NetworkVsRaw, p)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->Iterations(g_iterations);
  };
  add("network_vs_raw_convs/fp32", nn::Precision::kFp32);
  if (nn::cpu_supports_bf16()) {
    add("network_vs_raw_convs/bf16", nn::Precision::kBf16);
  } else {
    std::printf(
        "bf16 skipped: this CPU has neither avx512_bf16 nor AMX (oneDNN's effective ISA "
        "lacks them), so the CPU backend refuses bf16\n");
  }
  int rest_argc = int(rest.size());
  benchmark::Initialize(&rest_argc, rest.data());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  for (const char* p : {"fp32", "bf16"}) {
    auto net = g_seconds_per_frame.find(std::string("network ") + p);
    auto raw = g_seconds_per_frame.find(std::string("raw convs ") + p);
    if (net != g_seconds_per_frame.end() && raw != g_seconds_per_frame.end())
      std::printf(
          "%s: network %.3f s/frame, raw convolutions %.3f s/frame: network runs at %.1f%% "
          "of the raw convolution rate\n",
          p, net->second, raw->second, 100.0 * raw->second / net->second);
  }
  return 0;
}
