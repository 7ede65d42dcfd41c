// Host side of host_log.hpp.
#include "nn/cuda/host_log.hpp"

#include <spdlog/spdlog.h>

namespace upframe::nn::cuda {

void log_debug(const std::string& message) { spdlog::debug("{}", message); }

}  // namespace upframe::nn::cuda
