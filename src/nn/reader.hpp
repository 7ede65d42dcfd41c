// ncnn .param/.bin reader (see reader.cpp).
#pragma once

#include <filesystem>

#include "nn/graph.hpp"

namespace upframe::nn {

// Throws upframe::Error naming the file, the line and what is wrong.
Graph read_ncnn_model(const std::filesystem::path& param_path,
                      const std::filesystem::path& bin_path);

}  // namespace upframe::nn
