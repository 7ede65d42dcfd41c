// Fuzzes the ncnn model reader: upframe::nn::Model::load over a .param text and .bin bytes.
// Input layout: the .param text, then the line "@bin", then the .bin bytes (no marker: the
// whole input is the .param and the .bin is empty). Every bad model must come out as an
// upframe::Error; anything else (a crash, a sanitizer report, another exception, a huge
// allocation) is a finding.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_input.hpp"
#include "upframe/error.hpp"
#include "upframe/nn/model.hpp"

namespace {
constexpr std::string_view kBinMarker = "\n@bin\n";
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  upframe::fuzz::quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string_view param = input, bin;
  if (size_t at = input.find(kBinMarker); at != std::string_view::npos) {
    param = input.substr(0, at + 1);  // keep the last line's newline
    bin = input.substr(at + kBinMarker.size());
  }
  static const auto param_path = upframe::fuzz::scratch_file(".param");
  static const auto bin_path = upframe::fuzz::scratch_file(".bin");
  upframe::fuzz::write_file(param_path, param);
  upframe::fuzz::write_file(bin_path, bin);
  try {
    auto model = upframe::nn::Model::load(param_path, bin_path);
    // A model that loads must describe itself sensibly.
    const auto& info = model->info();
    if (info.scale < 1 || info.input_channels < 1 || info.output_channels < 1 ||
        info.receptive_radius < 0)
      __builtin_trap();
    if (upframe::fuzz::verbose())
      std::fprintf(stderr, "loaded: scale %d, %d -> %d channels, radius %d\n", info.scale,
                   info.input_channels, info.output_channels, info.receptive_radius);
  } catch (const upframe::Error& e) {
    // The expected outcome for a bad model.
    if (upframe::fuzz::verbose()) std::fprintf(stderr, "error: %s\n", e.what());
  }
  return 0;
}
