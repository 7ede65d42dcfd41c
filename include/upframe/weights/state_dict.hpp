// Model weight files read into a state dict: named tensors, nothing else. PyTorch's
// `torch.save` files (.pth/.pt/.ckpt, the zip layout and the legacy pickle stream) and
// .safetensors. Pickles go through a restricted unpickler that builds only containers and
// tensors and refuses every other GLOBAL when it reads it, before anything is built from it
// (see src/weights/pickle.hpp). Which network a state dict describes is decided elsewhere.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace upframe::weights {

// Element types a weight file may store. Values are always handed out as float.
enum class DType { kF32, kF16, kBF16, kF64, kI64, kI32, kU8, kBool };

std::string_view dtype_name(DType dtype);

struct Tensor {
  std::vector<int64_t> shape;
  DType stored = DType::kF32;  // the precision in the file
  std::vector<float> values;   // contiguous, row-major, shape's product of them

  int64_t numel() const;
};

struct StateDict {
  // "pytorch-zip", "pytorch-legacy" or "safetensors".
  std::string format;
  // In the file's order, wrapper keys ("params_ema", "state_dict", ...) and the `module.`
  // prefix of DataParallel checkpoints already taken off.
  std::vector<std::pair<std::string, Tensor>> tensors;
  // Which wrapper the tensors came from ("" for a bare state dict).
  std::string wrapper;

  const Tensor* find(std::string_view name) const;
  int64_t parameter_count() const;
};

// Reads any supported weight file, chosen by its content (zip, pickle or safetensors header),
// not its extension. Throws upframe::Error naming the file: a refused pickle GLOBAL is a
// usage error (exit 2), a damaged file a processing error.
StateDict read_state_dict(const std::filesystem::path& path);

// The same from bytes already in memory (the fuzz targets use these). `name` names the source
// in messages.
StateDict parse_safetensors(std::span<const uint8_t> bytes, const std::string& name);
StateDict parse_torch_legacy(std::span<const uint8_t> bytes, const std::string& name);
StateDict parse_torch_zip(std::span<const uint8_t> bytes, const std::string& name);

// True where the bytes start like a file read_state_dict takes.
bool looks_like_weight_file(std::span<const uint8_t> head);

}  // namespace upframe::weights
