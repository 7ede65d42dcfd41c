// SHA-256 of the CPU executor's output tensor for every shipped and test model (models/*.param,
// tests/models/**/*.param) at two input shapes, fp32 and (where this CPU has it) bf16: a
// refactor of src/nn that must keep the same oneDNN primitives in the same order shows the same
// lines before and after. The inputs are fixed pseudo-random images; the thread count is fixed
// too (results of parallel reductions may depend on it).
//
//   nn_output_hashes [--threads=2]
//
// Uses only the public executor API, so the same file builds against an older commit.
// Recorded output: docs/nn_output_hashes.txt (with the machine and command).
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

extern "C" {
#include <libavutil/mem.h>
#include <libavutil/sha.h>
}

#include "support/test_support.hpp"
#include "upframe/error.hpp"
#include "upframe/nn/model.hpp"

namespace {

using namespace upframe;

std::string sha256_hex(const std::vector<float>& values) {
  struct AVSHA* sha = av_sha_alloc();
  av_sha_init(sha, 256);
  av_sha_update(sha, reinterpret_cast<const uint8_t*>(values.data()),
                values.size() * sizeof(float));
  uint8_t digest[32];
  av_sha_final(sha, digest);
  av_free(sha);
  std::string hex;
  char byte[3];
  for (uint8_t b : digest) {
    std::snprintf(byte, sizeof(byte), "%02x", b);
    hex += byte;
  }
  return hex;
}

// A fixed image in [0,1) from a 32-bit LCG (the same values on every platform and commit).
nn::Tensor input_image(int channels, int height, int width) {
  nn::Tensor t(channels, height, width);
  uint32_t state = 12345u + uint32_t(height) * 31u + uint32_t(width);
  for (float& v : t.data) {
    state = state * 1664525u + 1013904223u;
    v = float(state >> 8) / float(1u << 24);
  }
  return t;
}

std::vector<std::filesystem::path> model_files() {
  const std::filesystem::path root = test::source_dir();
  std::vector<std::filesystem::path> params;
  for (const auto& entry : std::filesystem::directory_iterator(root / "models"))
    if (entry.path().extension() == ".param") params.push_back(entry.path());
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root / "tests/models"))
    if (entry.path().extension() == ".param") params.push_back(entry.path());
  std::sort(params.begin(), params.end());
  return params;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0) {
      threads = std::atoi(argv[i] + 10);
    } else {
      std::fprintf(stderr, "usage: nn_output_hashes [--threads=N]\n");
      return 2;
    }
  }
  omp_set_num_threads(threads);
  struct Size {
    int height, width;
  };
  // Odd sizes first (partial bands, channel-block remainders), then even ones; small enough
  // for 2 cores.
  const Size sizes[] = {{36, 52}, {67, 45}, {56, 72}, {60, 76}, {64, 80}, {72, 92}};
  std::vector<nn::Precision> precisions = {nn::Precision::kFp32};
  if (nn::cpu_supports_bf16()) precisions.push_back(nn::Precision::kBf16);
  std::printf("# nn_output_hashes --threads=%d, ISA %s%s\n", threads, nn::cpu_isa_name().c_str(),
              nn::cpu_supports_bf16() ? "" : " (no bf16 here: fp32 only)");
  const std::filesystem::path root = test::source_dir();
  try {
    for (const std::filesystem::path& param : model_files()) {
      std::filesystem::path bin = param;
      bin.replace_extension(".bin");
      auto model = nn::Model::load(param, bin);
      const std::string name = std::filesystem::relative(param, root).string();
      // The first two sizes the model takes (Real-CUGAN's crops need sides of some forms).
      std::vector<Size> taken;
      {
        auto probe = nn::make_cpu_executor(model, nn::Precision::kFp32, threads);
        for (const Size& size : sizes) {
          if (taken.size() == 2) break;
          try {
            probe->run(input_image(model->info().input_channels, size.height, size.width));
            taken.push_back(size);
          } catch (const Error&) {
          }
        }
      }
      for (nn::Precision precision : precisions) {
        auto executor = nn::make_cpu_executor(model, precision, threads);
        for (const Size& size : taken) {
          const nn::Tensor out =
              executor->run(input_image(model->info().input_channels, size.height, size.width));
          std::printf("%s %s %dx%d -> %dx%dx%d %s\n", name.c_str(), nn::precision_name(precision),
                      size.height, size.width, out.channels, out.height, out.width,
                      sha256_hex(out.data).c_str());
          std::fflush(stdout);
        }
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nn_output_hashes: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
