// Any model file a user has: an ncnn .param (its .bin beside it), a PyTorch .pth/.pt/.ckpt
// (zip or legacy pickle) or a .safetensors state dict of a recognised family, or an ONNX graph
// (docs/MODELS.md). Each becomes the same graph of ops an ncnn file gives, so every backend
// runs it as it runs the shipped models.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "upframe/nn/model.hpp"

namespace upframe::nn {

// True for the extensions load_model_file converts (.pth, .pt, .ckpt, .safetensors, .onnx)
// rather than reading as ncnn.
bool is_weight_file_extension(const std::filesystem::path& path);

// Throws upframe::Error naming the file: missing or damaged (exit 1); a refused pickle, an
// unknown architecture or a family recognised but not supported (exit 2).
std::shared_ptr<const Model> load_model_file(const std::filesystem::path& path);

// The ncnn network (.param text, .bin bytes) load_model_file builds from a weight file or an
// ONNX graph: for a tool that carries a converted model to where the converters are not built
// (the device-check kit). Throws as load_model_file does.
struct NcnnFiles {
  std::string param_text;
  std::string bin;
};
NcnnFiles convert_to_ncnn(const std::filesystem::path& path);

struct ModelFileInfo {
  std::string format;  // "ncnn", "pytorch-zip", "pytorch-legacy", "safetensors", "onnx (opset N)"
  std::string family;  // "ESRGAN", "Compact", "ONNX graph", "ncnn graph"
  std::string details;            // hyper-parameters, e.g. "23 blocks, 64 features, growth 32"
  int scale = 0;
  int input_channels = 0;
  int output_channels = 0;
  int64_t parameters = 0;         // -1 where not counted
  std::string weight_precision;   // "fp32", "fp16", "bf16", "mixed: ..."
  std::vector<std::pair<std::string, int>> ops;  // op type and how many, in first-seen order
  int receptive_radius = 0;
  // Some op (global pooling, GroupNorm, DySample) reads the whole image: tiles change the output.
  bool whole_image = false;
};
// Loads the model (so everything that would fail a run fails here too) and describes it.
ModelFileInfo describe_model_file(const std::filesystem::path& path);

}  // namespace upframe::nn
