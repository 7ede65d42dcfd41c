// Whole-network throughput of realesr-animevideov3 on the CPU backend, side by side with the
// "raw convolution rate" (SPEC section 8): each convolution layer of the network run alone as a
// oneDNN primitive with format_tag::any, weights and layouts prepared once, same threads.
//
//   bench_nn [--threads=N] [--width=480 --height=270] [google benchmark flags]
//
// Prints GFLOP/s (convolution FLOPs only, 2*K*K*IC*OC per output pixel) and s/frame for both,
// then the ratio network / raw.
#include <benchmark/benchmark.h>
#include <omp.h>

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

void set_counters(benchmark::State& state, double seconds_per_frame, const std::string& label) {
  double flops = conv_flops(conv_layers());
  state.counters["s_per_frame"] = seconds_per_frame;
  state.counters["GFLOP_per_s"] = flops / seconds_per_frame / 1e9;
  state.SetLabel(label);
  g_seconds_per_frame[label] = seconds_per_frame;
}

void BM_Network(benchmark::State& state, nn::Precision precision) {
  auto model = nn::Model::load(model_param(),
                               std::filesystem::path(model_param()).replace_extension(".bin"));
  auto exec = nn::make_cpu_executor(model, precision, g_threads);
  nn::Tensor input(3, g_height, g_width);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> dist(0.f, 1.f);
  for (float& v : input.data) v = dist(rng);
  exec->run(input);  // plan, primitives and weights prepared outside the timing
  double total = 0;
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    nn::Tensor out = exec->run(input);
    benchmark::DoNotOptimize(out.data.data());
    total += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  set_counters(state, total / state.iterations(),
               std::string("network ") + nn::precision_name(precision));
}

void BM_RawConvolutions(benchmark::State& state, nn::Precision precision) {
  if (g_threads > 0) omp_set_num_threads(g_threads);
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  auto type = precision == nn::Precision::kBf16 ? memory::data_type::bf16 : memory::data_type::f32;
  struct Prepared {
    dnnl::convolution_forward conv;
    memory src, weights, bias, dst;
  };
  std::vector<Prepared> convs;
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
    dnnl::convolution_forward::primitive_desc pd(d, engine);
    Prepared p{dnnl::convolution_forward(pd), memory(pd.src_desc(), engine),
               memory(pd.weights_desc(), engine), memory(bias, engine),
               memory(pd.dst_desc(), engine)};
    for (memory* m : {&p.src, &p.weights, &p.bias, &p.dst})
      std::memset(m->get_data_handle(), 0, m->get_desc().get_size());
    if (convs.empty()) std::printf("raw conv implementation: %s\n", pd.impl_info_str());
    convs.push_back(std::move(p));
  }
  auto run_all = [&]() {
    for (auto& p : convs)
      p.conv.execute(stream, {{DNNL_ARG_SRC, p.src},
                              {DNNL_ARG_WEIGHTS, p.weights},
                              {DNNL_ARG_BIAS, p.bias},
                              {DNNL_ARG_DST, p.dst}});
    stream.wait();
  };
  run_all();
  double total = 0;
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    run_all();
    total += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  set_counters(state, total / state.iterations(),
               std::string("raw convs ") + nn::precision_name(precision));
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0)
      g_threads = std::atoi(argv[i] + 10);
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
  auto add = [](const char* name, auto fn, nn::Precision p) {
    benchmark::RegisterBenchmark(name, fn, p)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->MinTime(2.0);
  };
  add("network/fp32", BM_Network, nn::Precision::kFp32);
  add("raw_convs/fp32", BM_RawConvolutions, nn::Precision::kFp32);
  if (nn::cpu_supports_bf16()) {
    add("network/bf16", BM_Network, nn::Precision::kBf16);
    add("raw_convs/bf16", BM_RawConvolutions, nn::Precision::kBf16);
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
