// The shipped realesr-animevideov3 x4 network from its ncnn files against the same weights
// saved as a PyTorch .pth (tests/models/pytorch/realesr-animevideov3-x4.pth): load time, and
// network time per frame, the two run alternately in one process so load on a shared machine
// hits both alike. Usage: bench_model_file [iterations] [fp32|bf16]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

#include "upframe/nn/model.hpp"
#include "upframe/nn/model_file.hpp"

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

int main(int argc, char** argv) {
  const int iterations = argc > 1 ? std::atoi(argv[1]) : 3;
  const bool bf16 = argc > 2 && std::strcmp(argv[2], "bf16") == 0;
  const std::string root = UPFRAME_SOURCE_DIR;
  const auto precision = bf16 ? upframe::nn::Precision::kBf16 : upframe::nn::Precision::kFp32;

  auto t = Clock::now();
  auto ncnn = upframe::nn::load_model_file(root + "/models/realesr-animevideov3-x4.param");
  const double ncnn_load = seconds_since(t);
  t = Clock::now();
  auto pth = upframe::nn::load_model_file(root + "/tests/models/pytorch/realesr-animevideov3-x4.pth");
  const double pth_load = seconds_since(t);

  upframe::nn::Tensor input;
  input.channels = 3;
  input.height = 270;
  input.width = 480;
  input.data.resize(size_t(3) * 270 * 480);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> uniform(0.f, 1.f);
  for (float& v : input.data) v = uniform(rng);

  auto ncnn_exec = upframe::nn::make_cpu_executor(ncnn, precision);
  auto pth_exec = upframe::nn::make_cpu_executor(pth, precision);
  ncnn_exec->run(input);  // plans and primitives made once, outside the timing
  pth_exec->run(input);
  double ncnn_time = 0, pth_time = 0;
  for (int i = 0; i < iterations; ++i) {
    t = Clock::now();
    ncnn_exec->run(input);
    ncnn_time += seconds_since(t);
    t = Clock::now();
    pth_exec->run(input);
    pth_time += seconds_since(t);
  }
  std::printf("precision %s, 480x270 -> 1920x1080, %d iterations each, alternated\n",
              bf16 ? "bf16" : "fp32", iterations);
  std::printf("load:    ncnn %.3f s, .pth %.3f s\n", ncnn_load, pth_load);
  std::printf("network: ncnn %.3f s/frame, .pth %.3f s/frame, .pth/ncnn %.3f\n",
              ncnn_time / iterations, pth_time / iterations, pth_time / ncnn_time);
  return 0;
}
