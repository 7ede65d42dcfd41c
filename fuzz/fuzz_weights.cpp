// Fuzzes the model-file readers: the restricted unpickler behind PyTorch's zip and legacy
// layouts, the safetensors header and the ONNX importer. The first byte picks the reader (0 zip,
// 1 legacy pickle stream, 2 safetensors, 3 ONNX); the rest is the file. A state dict that reads is then recognised and,
// where its family is built, written out as an ncnn network. Every bad file must come out as an
// upframe::Error; anything else (a crash, a sanitizer report, another exception, a huge
// allocation) is a finding.
#include <cstddef>
#include <cstdint>
#include <span>

#include "fuzz_input.hpp"
#include "upframe/error.hpp"
#include "upframe/weights/architecture.hpp"
#include "upframe/weights/onnx_import.hpp"
#include "upframe/weights/state_dict.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  upframe::fuzz::quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::span<const uint8_t> file(data + 1, size - 1);
  try {
    if (data[0] % 4 == 3) {
      upframe::weights::import_onnx(file, "fuzz.onnx");
      return 0;
    }
    upframe::weights::StateDict dict;
    switch (data[0] % 4) {
      case 0: dict = upframe::weights::parse_torch_zip(file, "fuzz.pth"); break;
      case 1: dict = upframe::weights::parse_torch_legacy(file, "fuzz.pth"); break;
      default: dict = upframe::weights::parse_safetensors(file, "fuzz.safetensors"); break;
    }
    for (const auto& [name, tensor] : dict.tensors)
      if (static_cast<int64_t>(tensor.values.size()) != tensor.numel()) __builtin_trap();
    const auto arch = upframe::weights::recognise_architecture(dict);
    if (arch.supported) upframe::weights::build_ncnn_network(dict, arch, "fuzz.pth");
  } catch (const upframe::Error&) {
  }
  return 0;
}
