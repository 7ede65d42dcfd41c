// ncnn .param/.bin reader (see reader.cpp).
#pragma once

#include <filesystem>

#include "nn/graph.hpp"

namespace upframe::nn {

// Throws upframe::Error naming the file, the line and what is wrong.
Graph read_ncnn_model(const std::filesystem::path& param_path,
                      const std::filesystem::path& bin_path);

// The same from text and weights in memory (a network built from a weight file's state dict);
// `name` names them in messages.
Graph read_ncnn_model_text(const std::string& param_text, std::string bin_data,
                           const std::string& name);

}  // namespace upframe::nn
