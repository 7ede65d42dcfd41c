// Is a CUDA device usable here? One probe shared by every stage's GPU path, so each fallback
// can log the same reason ("no CUDA driver", "CUDA support not built", ...).
#pragma once

#include <cstddef>
#include <string>

namespace upframe {

struct CudaDeviceInfo {
  bool available = false;
  std::string reason;  // why not, when !available
  std::string name;    // "NVIDIA H100 80GB HBM3"
  int compute_major = 0, compute_minor = 0;
  size_t free_bytes = 0, total_bytes = 0;
};

// True when this upframe was built with the CUDA backend.
bool cuda_built();

// Probes device `index` (cudaGetDeviceCount, properties, cudaMemGetInfo). Any error, a missing
// driver included, is "not available" with the reason; never throws.
CudaDeviceInfo cuda_device_info(int index = 0);

}  // namespace upframe
