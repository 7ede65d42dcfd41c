// Logging for the CUDA executor's .cu files: spdlog's consteval format strings do not compile
// under nvcc, so the .cu code hands finished messages to this host-compiled function.
#pragma once

#include <string>

namespace upframe::nn::cuda {

void log_debug(const std::string& message);

}  // namespace upframe::nn::cuda
