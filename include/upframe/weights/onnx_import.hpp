// ONNX super-resolution graphs (the ops a PyTorch export of SRVGGNetCompact, RRDBNet and their
// kin produces) translated node by node into an ncnn graph, which upframe's ncnn reader then
// loads like a shipped model. Parsed with Debian's libonnx (protobuf).
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "upframe/weights/architecture.hpp"

namespace upframe::weights {

struct OnnxImport {
  NcnnNetwork network;
  int64_t opset = 0;
  std::string producer;          // e.g. "pytorch 1.13.0"
  std::string weight_precision;  // of the initializers: "fp32", "fp16" or "mixed: ..."
  int64_t parameters = 0;        // elements in the initializers the graph uses
};

// Throws upframe::Error naming `name`: a file that is not ONNX, or damaged (exit 1); an op
// outside the supported set, named with its node (exit 2).
OnnxImport import_onnx(std::span<const uint8_t> bytes, const std::string& name);

}  // namespace upframe::weights
